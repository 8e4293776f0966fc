//! A reproducible initramfs archive: cpio "newc", names sorted, owner root, mtime 0, inode
//! numbers in name order, so the same tree gives the same bytes.

use std::collections::BTreeMap;

/// What a path in the archive is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
    CharDev { mode: u32, major: u32, minor: u32 },
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// A tree of paths (relative, without a leading `/`), written in sorted order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Archive {
    nodes: BTreeMap<String, Node>,
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    /// Adds `node` at `path` (a leading `/` is dropped), and every missing parent directory
    /// (mode 0755). A later insert at the same path replaces the earlier one.
    pub fn insert(&mut self, path: &str, node: Node) {
        let path = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_owned();
        let mut parent = path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            self.nodes
                .entry(p.to_owned())
                .or_insert(Node::Dir { mode: 0o755 });
            parent = p;
        }
        self.nodes.insert(path, node);
    }

    pub fn dir(&mut self, path: &str) {
        self.insert(path, Node::Dir { mode: 0o755 });
    }

    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        self.insert(path, Node::File { mode, data });
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.insert(
            path,
            Node::Symlink {
                target: target.to_owned(),
            },
        );
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path.trim_start_matches('/'))
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// The archive in cpio newc format, ending with the trailer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, node)) in (1u32..).zip(&self.nodes) {
            let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match node {
                Node::Dir { mode } => (S_IFDIR | (mode & 0o7777), 2, &[], (0, 0)),
                Node::File { mode, data } => (S_IFREG | (mode & 0o7777), 1, data, (0, 0)),
                Node::Symlink { target } => (S_IFLNK | 0o777, 1, target.as_bytes(), (0, 0)),
                Node::CharDev { mode, major, minor } => {
                    (S_IFCHR | (mode & 0o7777), 1, &[], (*major, *minor))
                }
            };
            entry(&mut out, ino, mode, nlink, rdev, path, data);
        }
        entry(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[]);
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn entry(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) {
    // Files in an initrd are far below 4 GiB; a larger one would not fit the format at all.
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout_sorted_with_parents_and_trailer() {
        let mut a = Archive::new();
        a.file("/usr/bin/x", 0o755, b"hello".to_vec());
        a.symlink("bin", "/x/yz/w");
        let bytes = a.to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        // bin < usr < usr/bin < usr/bin/x, then the trailer.
        let order: Vec<usize> = ["bin\0", "usr\0", "usr/bin\0", "usr/bin/x\0", "TRAILER!!!\0"]
            .iter()
            .map(|n| text.find(n).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        // First header: inode 1, a symlink, size 7 ("/x/yz/w"), name size 4.
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(&text[6..14], "00000001");
        assert_eq!(&text[14..22], "0000A1FF");
        assert_eq!(&text[54..62], "00000007");
        assert_eq!(&text[94..102], "00000004");
        assert_eq!(bytes.len() % 4, 0);
        // The same tree gives the same bytes.
        assert_eq!(a.clone().to_bytes(), bytes);
    }
}
