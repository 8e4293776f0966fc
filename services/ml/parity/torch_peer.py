"""The peer for hearth-ml's training benchmark (services/ml/benches/train.rs): the same models,
trained the same way, on the same table and split, in PyTorch on the CPU (falling back to
scikit-learn's MLPClassifier where PyTorch is not installed).

    python3 services/ml/parity/torch_peer.py TABLE.csv --threads 2 --epochs 5 [--device cuda]

TABLE.csv is `hearth_ml::synth::fraud` as written by the `synth` example; the split (seed 7,
70/10/20) and the standardization are hearth-ml's (common.py). Models: an MLP
33-256-256-1 (ReLU) and a logistic regression (33-1), binary cross-entropy on logits, Adam
(lr 1e-3), batches of 1024 in an order reshuffled every epoch, float32, a fixed number of epochs,
the output bias starting at the training log-odds (as in hearth-ml). On the CPU the MLP also runs
with PyTorch's mixed precision (`torch.autocast(bfloat16)`), reported as `mlp_bf16`, the peer of
hearth-ml's mixed-precision training; on a GPU it also runs with TF32 matrix products
(`torch.backends.cuda.matmul.allow_tf32`), reported as `mlp_tf32`, the peer of hearth-ml's TF32
tensor-core training. Plain `mlp` is float32 everywhere (PyTorch's default on GPUs too). On a
GPU both run again through `torch.compile` with CUDA graphs and fused Adam (`mlp_compiled`,
`mlp_tf32_compiled`): eager PyTorch is bound by Python and kernel launches at this batch size,
and a compiled run is the fair strong peer (its first epoch, which compiles, is not counted).
Rows per second count training steps only (the minibatch gather, forward, backward and Adam
update), as hearth-ml's report does. Prints one JSON object.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from common import Standardizer, read_numeric_csv, split  # noqa: E402

SPLIT_SEED = 7


def load(path):
    header, data = read_numeric_csv(path)
    y_col = header.index("is_fraud")
    y = data[:, y_col]
    x = np.delete(data, y_col, axis=1)
    train, _, test = split(np.flatnonzero(~np.isnan(y)), 0.1, 0.2, SPLIT_SEED)
    prep = Standardizer().fit(x[train])
    return (prep.transform(x[train]), y[train].astype(np.float32),
            prep.transform(x[test]), y[test].astype(np.float32))


def torch_run(xtr, ytr, xte, yte, hidden, epochs, batch, threads, device="cpu", bf16=False,
              tf32=False, compiled=False):
    """One PyTorch training run. `compiled` (GPU): the network through torch.compile with CUDA
    graphs (mode "reduce-overhead") and Adam's fused kernel, PyTorch's answer to launch-bound
    small steps; its rate is taken over the epochs after the first, which pays the compilation
    (reported apart as first_epoch_seconds)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    # Plain float32 products on a GPU unless TF32 is asked for (PyTorch's default is off).
    torch.backends.cuda.matmul.allow_tf32 = tf32
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    layers, width = [], xtr.shape[1]
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, 1))
    net = torch.nn.Sequential(*layers)
    # hearth-ml starts the output bias at the training log-odds; so does the peer.
    prior = float(ytr.mean())
    with torch.no_grad():
        net[-1].bias.fill_(np.log(prior / (1 - prior)))
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=compiled or None)
    model = torch.compile(net, mode="reduce-overhead") if compiled else net
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x, y = torch.from_numpy(xtr).to(device), torch.from_numpy(ytr).to(device)
    n = x.shape[0]
    epoch_seconds = []
    for _ in range(epochs):
        order = torch.randperm(n, device=device)
        sync()
        t = time.perf_counter()
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            xb, yb = x[idx], y[idx]
            if compiled:
                # One training step per CUDA-graph replay: outputs of the last may be reused.
                torch.compiler.cudagraph_mark_step_begin()
            opt.zero_grad(set_to_none=True)
            # Mixed precision (bf16=True): PyTorch's own, products in bfloat16 (oneDNN), the
            # loss and the parameters in float32, as hearth-ml's CPU backend does on CPUs with
            # AVX-512 BF16.
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                out = model(xb).squeeze(1)
            loss = loss_fn(out.float(), yb)
            loss.backward()
            opt.step()
        sync()
        epoch_seconds.append(time.perf_counter() - t)
    timed = epoch_seconds[1:] if compiled and epochs > 1 else epoch_seconds
    step_seconds = sum(timed)
    with torch.no_grad():
        p = torch.sigmoid(net(torch.from_numpy(xte).to(device)).squeeze(1)).cpu().numpy()
    return {
        "rows_per_sec": n * len(timed) / step_seconds,
        "roc_auc": roc_auc_score(yte, p),
        "seconds": step_seconds,
        "first_epoch_seconds": epoch_seconds[0],
    }


def sklearn_run(xtr, ytr, xte, yte, hidden, epochs, batch):
    from sklearn.linear_model import SGDClassifier
    from sklearn.neural_network import MLPClassifier

    if hidden:
        model = MLPClassifier(hidden, alpha=0.0, batch_size=batch, random_state=0)
    else:
        model = SGDClassifier(loss="log_loss", alpha=0.0, learning_rate="adaptive", eta0=1e-3)
    t = time.perf_counter()
    for _ in range(epochs):
        model.partial_fit(xtr, ytr, classes=[0.0, 1.0])
    seconds = time.perf_counter() - t
    p = model.predict_proba(xte)[:, 1]
    return {
        "rows_per_sec": len(ytr) * epochs / seconds,
        "roc_auc": roc_auc_score(yte, p),
        "seconds": seconds,
    }


def compiled(run, hidden, tf32=False):
    """A torch.compile run, or why it could not be made (the rest of the record still counts)."""
    try:
        return run(hidden, tf32=tf32, compiled=True)
    except Exception as e:  # noqa: BLE001 (any compiler failure is reported, not fatal)
        return {"error": f"{type(e).__name__}: {e}"[:500]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU benchmark")
    args = ap.parse_args()
    xtr, ytr, xte, yte = load(args.csv)
    try:
        import torch

        peer = f"PyTorch {torch.__version__}"
        run = lambda hidden, bf16=False, tf32=False, compiled=False: torch_run(  # noqa: E731
            xtr, ytr, xte, yte, hidden, args.epochs, args.batch, args.threads, args.device, bf16,
            tf32, compiled)
    except ImportError:
        import sklearn

        peer = f"scikit-learn {sklearn.__version__} (PyTorch not installed)"
        run = lambda hidden, bf16=False, tf32=False, compiled=False: sklearn_run(  # noqa: E731
            xtr, ytr, xte, yte, hidden, args.epochs, args.batch) if not (
                bf16 or tf32 or compiled) else None
    result = {
        "peer": peer,
        "python": platform.python_version(),
        "threads": args.threads,
        "device": args.device,
        "epochs": args.epochs,
        "train_rows": len(ytr),
        "mlp": run((256, 256)),
        "mlp_bf16": run((256, 256), bf16=True) if args.device == "cpu" else None,
        "mlp_tf32": run((256, 256), tf32=True) if args.device == "cuda" else None,
        "mlp_compiled": compiled(run, (256, 256)) if args.device == "cuda" else None,
        "mlp_tf32_compiled": compiled(run, (256, 256), tf32=True) if args.device == "cuda"
        else None,
        "logreg": run(()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
