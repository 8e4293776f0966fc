# An independent implementation of the record format (docs/audit.md), in Python with only the
# standard library: writes spec-vector.jsonl under the MAC key [7; 32] and prints the head hash.
# The Rust test `export::an_export_written_from_the_spec_alone_verifies` checks the crate agrees.
import hashlib, hmac, struct, json
key = bytes([7]*32)
def f(b): return struct.pack('>Q', len(b)) + b
def rec(seq, time, actor, role, action, obj, outcome, reason, parent, prev):
    parts = [b'hearth-audit/record/v1', struct.pack('>Q', seq), time.encode(), actor.encode(), role.encode(),
             action.encode(), obj.encode(), outcome.encode(), (reason or '').encode(),
             struct.pack('>Q', parent) if parent is not None else b'', prev]
    h = hashlib.sha256(b''.join(f(p) for p in parts)).digest()
    m = hmac.new(key, h, hashlib.sha256).digest()
    d = {"seq": seq, "time": time, "actor": actor, "role": role, "action": action, "object": obj, "outcome": outcome}
    if reason is not None: d["reason"] = reason
    if parent is not None: d["parent"] = parent
    d.update(prev=prev.hex(), hash=h.hex(), mac=m.hex())
    return json.dumps(d, separators=(',', ':'), ensure_ascii=False), h
prev = bytes(32); lines = []
spec = [(0,"2025-01-02T03:04:05.006Z","alice","admin","users.create","user:bob","started",None,None),
        (1,"2025-01-02T03:04:05.106Z","alice","admin","users.create","user:bob","succeeded",None,0),
        (2,"2025-01-02T03:04:06.000Z","bob","operator","models.train","model:é","started",None,None),
        (3,"2025-01-02T03:04:07.000Z","bob","operator","models.train","model:é","failed","out of \"memory\"",2)]
for s in spec:
    line, prev = rec(*s, prev); lines.append(line)
open('spec-vector.jsonl','w').write('\n'.join(lines)+'\n')
print(prev.hex())
