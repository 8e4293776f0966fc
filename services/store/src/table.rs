//! Typed tables over redb, with every value sealed in an AEAD record envelope.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use hearth_keys::{RecordCipher, describe_key};
use redb::{ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// redb's view of every table: byte keys, byte values (envelopes).
pub(crate) type RawTable = TableDefinition<'static, &'static [u8], &'static [u8]>;

type RawWriteTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;
type RawReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;
type Types<K, V> = PhantomData<(fn(&K), fn() -> V)>;

/// The decoded rows of a table: `(key, value)` pairs in key order.
pub type Rows<K, V> = Vec<(<K as Key>::Owned, <V as Value>::Owned)>;
pub(crate) type RawRows<V> = Vec<(Vec<u8>, <V as Value>::Owned)>;

pub(crate) fn raw(name: &'static str) -> RawTable {
    TableDefinition::new(name)
}

/// A table of keys `K` and values `V` (a [`Value`] codec such as [`Bytes`] or [`Json`]).
/// Declare tables as constants: `const USERS: Table<str, Json<User>> = Table::new("users");`.
///
/// Table names and keys are stored in clear (they are what the database indexes); values are
/// encrypted. Use ids, not personal data, as keys. Names starting with `_` are the store's own.
pub struct Table<K: ?Sized, V> {
    name: &'static str,
    _types: Types<K, V>,
}

impl<K: ?Sized, V> Table<K, V> {
    pub const fn new(name: &'static str) -> Self {
        Table {
            name,
            _types: PhantomData,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn checked_name(&self) -> Result<&'static str, StoreError> {
        if self.name.starts_with('_') {
            Err(StoreError::ReservedTable { name: self.name })
        } else {
            Ok(self.name)
        }
    }
}

impl<K: ?Sized, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: ?Sized, V> Copy for Table<K, V> {}

impl<K: ?Sized, V> fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Table({})", self.name)
    }
}

/// How a key type becomes the bytes the database orders and the envelope is bound to.
pub trait Key {
    type Owned;
    type Encoded<'a>: AsRef<[u8]>
    where
        Self: 'a;
    fn encode(&self) -> Self::Encoded<'_>;
    fn decode(bytes: &[u8]) -> Option<Self::Owned>;
}

impl Key for str {
    type Owned = String;
    type Encoded<'a> = &'a [u8];
    fn encode(&self) -> &[u8] {
        self.as_bytes()
    }
    fn decode(bytes: &[u8]) -> Option<String> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

impl Key for [u8] {
    type Owned = Vec<u8>;
    type Encoded<'a> = &'a [u8];
    fn encode(&self) -> &[u8] {
        self
    }
    fn decode(bytes: &[u8]) -> Option<Vec<u8>> {
        Some(bytes.to_vec())
    }
}

/// Big-endian, so keys sort numerically.
impl Key for u64 {
    type Owned = u64;
    type Encoded<'a> = [u8; 8];
    fn encode(&self) -> [u8; 8] {
        self.to_be_bytes()
    }
    fn decode(bytes: &[u8]) -> Option<u64> {
        bytes.try_into().ok().map(u64::from_be_bytes)
    }
}

impl Key for [u8; 16] {
    type Owned = [u8; 16];
    type Encoded<'a> = &'a [u8];
    fn encode(&self) -> &[u8] {
        self
    }
    fn decode(bytes: &[u8]) -> Option<[u8; 16]> {
        bytes.try_into().ok()
    }
}

/// How a value type becomes plaintext bytes (which are then sealed).
pub trait Value {
    type Owned;
    fn encode(value: &Self::Owned) -> Result<Cow<'_, [u8]>, serde_json::Error>;
    fn decode(bytes: Vec<u8>) -> Result<Self::Owned, serde_json::Error>;
}

/// Raw bytes.
#[derive(Debug)]
pub struct Bytes;

impl Value for Bytes {
    type Owned = Vec<u8>;
    fn encode(value: &Vec<u8>) -> Result<Cow<'_, [u8]>, serde_json::Error> {
        Ok(Cow::Borrowed(value))
    }
    fn decode(bytes: Vec<u8>) -> Result<Vec<u8>, serde_json::Error> {
        Ok(bytes)
    }
}

/// Any serde type, as JSON.
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Json")
    }
}

impl<T: Serialize + DeserializeOwned> Value for Json<T> {
    type Owned = T;
    fn encode(value: &T) -> Result<Cow<'_, [u8]>, serde_json::Error> {
        serde_json::to_vec(value).map(Cow::Owned)
    }
    fn decode(bytes: Vec<u8>) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&bytes)
    }
}

pub(crate) fn seal_value<V: Value>(
    cipher: &RecordCipher,
    table: &'static str,
    key: &[u8],
    value: &V::Owned,
) -> Result<Vec<u8>, StoreError> {
    let plain = V::encode(value).map_err(|source| StoreError::Encode {
        table,
        key: describe_key(key),
        source,
    })?;
    Ok(cipher.seal(table, key, &plain)?)
}

pub(crate) fn open_value<V: Value>(
    cipher: &RecordCipher,
    table: &'static str,
    key: &[u8],
    envelope: &[u8],
) -> Result<V::Owned, StoreError> {
    let plain = cipher.open(table, key, envelope)?;
    V::decode(plain).map_err(|source| StoreError::Decode {
        table,
        key: describe_key(key),
        source,
    })
}

/// Reads `key` from an open table (of a read or a write transaction) and authenticates it.
fn get_from<V: Value>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    cipher: &RecordCipher,
    path: &Path,
    name: &'static str,
    key: &[u8],
) -> Result<Option<V::Owned>, StoreError> {
    let found = table.get(key).map_err(|e| StoreError::Db {
        path: path.to_owned(),
        source: e.into(),
    })?;
    match found {
        Some(guard) => Ok(Some(open_value::<V>(cipher, name, key, guard.value())?)),
        None => Ok(None),
    }
}

/// The tables a transaction has opened, by name. A short list, searched by the name's address
/// first (names are `&'static str` constants, so the same table is normally the same pointer),
/// then by its text: a lookup costs a comparison or two, no hashing.
struct Opened<T>(Vec<(&'static str, T)>);

impl<T> Opened<T> {
    fn new() -> Self {
        Opened(Vec::new())
    }

    #[inline]
    fn find(&self, name: &'static str) -> Option<usize> {
        self.0
            .iter()
            .position(|(n, _)| std::ptr::eq(*n, name))
            .or_else(|| self.0.iter().position(|(n, _)| *n == name))
    }

    /// The table called `name`, opened by `open` the first time it is asked for.
    #[inline]
    fn get_or_open<E>(
        &mut self,
        name: &'static str,
        open: impl FnOnce() -> Result<T, E>,
    ) -> Result<&mut T, E> {
        let i = match self.find(name) {
            Some(i) => i,
            None => {
                self.0.push((name, open()?));
                self.0.len() - 1
            }
        };
        Ok(&mut self.0[i].1)
    }
}

/// A write transaction: everything in it commits durably (fsync) and atomically, or not at all.
/// Opened tables are kept for the transaction, so batches pay for the lookup once.
pub struct WriteTxn<'t> {
    txn: &'t redb::WriteTransaction,
    cipher: &'t RecordCipher,
    path: &'t Path,
    tables: Opened<RawWriteTable<'t>>,
}

impl fmt::Debug for WriteTxn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteTxn").finish_non_exhaustive()
    }
}

impl<'t> WriteTxn<'t> {
    pub(crate) fn new(
        txn: &'t redb::WriteTransaction,
        cipher: &'t RecordCipher,
        path: &'t Path,
    ) -> Self {
        WriteTxn {
            txn,
            cipher,
            path,
            tables: Opened::new(),
        }
    }

    fn table(&mut self, name: &'static str) -> Result<&mut RawWriteTable<'t>, StoreError> {
        let (txn, path) = (self.txn, self.path);
        self.tables.get_or_open(name, || {
            txn.open_table(raw(name)).map_err(|e| StoreError::Db {
                path: path.to_owned(),
                source: e.into(),
            })
        })
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn put<K: Key + ?Sized, V: Value>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
        value: &V::Owned,
    ) -> Result<(), StoreError> {
        let name = table.checked_name()?;
        self.put_raw::<V>(name, key.encode().as_ref(), value)
    }

    pub(crate) fn put_raw<V: Value>(
        &mut self,
        name: &'static str,
        key: &[u8],
        value: &V::Owned,
    ) -> Result<(), StoreError> {
        let envelope = seal_value::<V>(self.cipher, name, key, value)?;
        let path = self.path;
        self.table(name)?
            .insert(key, envelope.as_slice())
            .map_err(|e| StoreError::Db {
                path: path.to_owned(),
                source: e.into(),
            })?;
        Ok(())
    }

    /// Reads `key` as this transaction sees it.
    pub fn get<K: Key + ?Sized, V: Value>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V::Owned>, StoreError> {
        let name = table.checked_name()?;
        self.get_raw::<V>(name, key.encode().as_ref())
    }

    pub(crate) fn get_raw<V: Value>(
        &mut self,
        name: &'static str,
        key: &[u8],
    ) -> Result<Option<V::Owned>, StoreError> {
        let (cipher, path) = (self.cipher, self.path);
        get_from::<V>(self.table(name)?, cipher, path, name, key)
    }

    /// Removes `key`; whether it was there.
    pub fn remove<K: Key + ?Sized, V: Value>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<bool, StoreError> {
        let name = table.checked_name()?;
        self.remove_raw(name, key.encode().as_ref())
    }

    /// Every entry of `table` as this transaction sees it, in key order, each authenticated.
    pub fn list<K: Key + ?Sized, V: Value>(
        &mut self,
        table: &Table<K, V>,
    ) -> Result<Rows<K, V>, StoreError> {
        let name = table.checked_name()?;
        let (cipher, path) = (self.cipher, self.path);
        let db_err = |e: redb::StorageError| StoreError::Db {
            path: path.to_owned(),
            source: e.into(),
        };
        let t = self.table(name)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            let key = k.value().to_vec();
            let value = open_value::<V>(cipher, name, &key, v.value())?;
            let key = K::decode(&key).ok_or(StoreError::BadKey {
                table: name,
                key: describe_key(&key),
            })?;
            out.push((key, value));
        }
        Ok(out)
    }

    pub(crate) fn remove_raw(
        &mut self,
        name: &'static str,
        key: &[u8],
    ) -> Result<bool, StoreError> {
        let path = self.path;
        let removed = self.table(name)?.remove(key).map_err(|e| StoreError::Db {
            path: path.to_owned(),
            source: e.into(),
        })?;
        Ok(removed.is_some())
    }
}

/// A read transaction: a consistent snapshot.
pub struct ReadTxn<'s> {
    txn: redb::ReadTransaction,
    cipher: &'s RecordCipher,
    path: &'s Path,
    tables: Opened<Option<RawReadTable>>,
}

impl fmt::Debug for ReadTxn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadTxn").finish_non_exhaustive()
    }
}

impl<'s> ReadTxn<'s> {
    pub(crate) fn new(
        txn: redb::ReadTransaction,
        cipher: &'s RecordCipher,
        path: &'s Path,
    ) -> Self {
        ReadTxn {
            txn,
            cipher,
            path,
            tables: Opened::new(),
        }
    }

    fn table(&mut self, name: &'static str) -> Result<Option<&RawReadTable>, StoreError> {
        let (txn, path) = (&self.txn, self.path);
        let t = self
            .tables
            .get_or_open(name, || match txn.open_table(raw(name)) {
                Ok(t) => Ok(Some(t)),
                // A table never written to is an empty table.
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(StoreError::Db {
                    path: path.to_owned(),
                    source: e.into(),
                }),
            })?;
        Ok(t.as_ref())
    }

    /// Reads `key`.
    pub fn get<K: Key + ?Sized, V: Value>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V::Owned>, StoreError> {
        let name = table.checked_name()?;
        self.get_raw::<V>(name, key.encode().as_ref())
    }

    pub(crate) fn get_raw<V: Value>(
        &mut self,
        name: &'static str,
        key: &[u8],
    ) -> Result<Option<V::Owned>, StoreError> {
        let (cipher, path) = (self.cipher, self.path);
        match self.table(name)? {
            Some(t) => get_from::<V>(t, cipher, path, name, key),
            None => Ok(None),
        }
    }

    /// Every entry of `table`, in key order, each authenticated.
    pub fn list<K: Key + ?Sized, V: Value>(
        &mut self,
        table: &Table<K, V>,
    ) -> Result<Rows<K, V>, StoreError> {
        let name = table.checked_name()?;
        self.list_raw::<V>(name)?
            .into_iter()
            .map(|(k, v)| {
                K::decode(&k).map(|k| (k, v)).ok_or(StoreError::BadKey {
                    table: name,
                    key: describe_key(&k),
                })
            })
            .collect()
    }

    pub(crate) fn list_raw<V: Value>(
        &mut self,
        name: &'static str,
    ) -> Result<RawRows<V>, StoreError> {
        let cipher = self.cipher;
        let path = self.path;
        let db_err = |e: redb::StorageError| StoreError::Db {
            path: path.to_owned(),
            source: e.into(),
        };
        let Some(t) = self.table(name)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in t.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            let key = k.value().to_vec();
            let value = open_value::<V>(cipher, name, &key, v.value())?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// The keys of `table` (not decrypted: keys are stored in clear).
    pub(crate) fn keys_raw(&mut self, name: &'static str) -> Result<Vec<Vec<u8>>, StoreError> {
        let path = self.path;
        let db_err = |e: redb::StorageError| StoreError::Db {
            path: path.to_owned(),
            source: e.into(),
        };
        let Some(t) = self.table(name)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in t.iter().map_err(db_err)? {
            let (k, _) = entry.map_err(db_err)?;
            out.push(k.value().to_vec());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Opened;

    #[test]
    fn opened_tables_are_found_by_address_or_by_text_and_opened_once() {
        let mut opened = Opened::new();
        let mut opens = 0;
        let mut open = |n| {
            opens += 1;
            Ok::<_, ()>(n)
        };
        assert_eq!(*opened.get_or_open("users", || open(1)).unwrap(), 1);
        assert_eq!(*opened.get_or_open("roles", || open(2)).unwrap(), 2);
        assert_eq!(*opened.get_or_open("users", || open(3)).unwrap(), 1);
        // The same name at another address (not a constant) is the same table.
        let copy: &'static str = Box::leak(String::from("roles").into_boxed_str());
        assert_eq!(*opened.get_or_open(copy, || open(4)).unwrap(), 2);
        // A table that failed to open is not remembered.
        opened
            .get_or_open("audit", || Err::<i32, ()>(()))
            .unwrap_err();
        assert_eq!(*opened.get_or_open("audit", || open(5)).unwrap(), 5);
        assert_eq!(opens, 3);
    }
}
