//! `file://` URIs and paths: only inside the operator's `--file-root`s.
//!
//! A path is first checked as written (`..` removed lexically), so a path
//! outside every root is refused without touching the file system: its
//! error never tells a tenant whether a file exists there. It is then
//! canonicalized (symlinks resolved) and checked again, which refuses a
//! symlink inside a root that points out of it.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::size_text;

pub struct Roots {
    /// (as given, normalized; canonical)
    roots: Vec<(PathBuf, PathBuf)>,
}

impl Roots {
    pub fn new(dirs: &[PathBuf]) -> Result<Self, String> {
        let mut roots = Vec::new();
        for d in dirs {
            if !d.is_absolute() {
                return Err(format!(
                    "--file-root {}: must be an absolute path",
                    d.display()
                ));
            }
            let canonical = d
                .canonicalize()
                .map_err(|e| format!("--file-root {}: {e}", d.display()))?;
            if !canonical.is_dir() {
                return Err(format!("--file-root {}: not a directory", d.display()));
            }
            roots.push((normalize(d), canonical));
        }
        Ok(Roots { roots })
    }

    pub fn read(&self, path: &Path, max: u64) -> Result<Vec<u8>, String> {
        let shown = path.display();
        if self.roots.is_empty() {
            return Err(format!(
                "{shown}: file URIs are refused: the worker has no --file-root (PGAI_MIGRATE_FILE_ROOTS)"
            ));
        }
        let lexical = normalize(path);
        let inside = |p: &Path| {
            self.roots
                .iter()
                .any(|(g, c)| p.starts_with(g) || p.starts_with(c))
        };
        if !inside(&lexical) {
            return Err(format!(
                "{shown}: refused: outside the worker's --file-root directories"
            ));
        }
        let canonical = lexical
            .canonicalize()
            .map_err(|e| format!("{shown}: {}", io_text(&e)))?;
        if !self.roots.iter().any(|(_, c)| canonical.starts_with(c)) {
            return Err(format!(
                "{shown}: refused: it resolves (through a symlink) outside the worker's --file-root directories"
            ));
        }
        let f = std::fs::File::open(&canonical).map_err(|e| format!("{shown}: {}", io_text(&e)))?;
        let meta = f
            .metadata()
            .map_err(|e| format!("{shown}: {}", io_text(&e)))?;
        // Not a FIFO or device, which could block or never end.
        if !meta.is_file() {
            return Err(format!("{shown}: not a regular file"));
        }
        if meta.len() > max {
            return Err(too_large(&shown.to_string(), max));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        f.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{shown}: {}", io_text(&e)))?;
        if bytes.len() as u64 > max {
            return Err(too_large(&shown.to_string(), max));
        }
        Ok(bytes)
    }
}

fn too_large(what: &str, max: u64) -> String {
    format!(
        "{what}: larger than the worker's limit of {} (--uri-max-bytes)",
        size_text(max)
    )
}

/// The error without the OS's decoration ("(os error 2)").
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `.` and `..` removed as written, without reading the file system
/// (`..` at the root stays at the root, as the kernel does).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("pgai-migrate-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn paths_normalize_as_written() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normalize(Path::new("/a/../../etc")), PathBuf::from("/etc"));
    }

    #[test]
    fn only_regular_files_inside_a_root_are_read() {
        let base = tmp("roots");
        let root = base.join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.txt"), "hello").unwrap();
        std::fs::write(base.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("escape.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("alias.txt")).unwrap();
        let roots = Roots::new(std::slice::from_ref(&root)).unwrap();

        assert_eq!(roots.read(&root.join("a.txt"), 100).unwrap(), b"hello");
        assert_eq!(roots.read(&root.join("alias.txt"), 100).unwrap(), b"hello");
        assert!(roots
            .read(&root.join("escape.txt"), 100)
            .unwrap_err()
            .contains("symlink"));
        let up = root.join("../secret.txt");
        assert!(roots.read(&up, 100).unwrap_err().contains("outside"));
        assert!(roots
            .read(Path::new("/etc/passwd"), 100)
            .unwrap_err()
            .contains("outside"));
        // Outside a root, a missing file reads the same as a present one.
        assert_eq!(
            roots.read(Path::new("/nonexistent/x"), 100).unwrap_err(),
            "/nonexistent/x: refused: outside the worker's --file-root directories"
        );
        assert!(roots
            .read(&root.join("missing"), 100)
            .unwrap_err()
            .contains("no such file"));
        assert!(roots
            .read(&root, 100)
            .unwrap_err()
            .contains("not a regular file"));
        assert!(roots
            .read(&root.join("a.txt"), 4)
            .unwrap_err()
            .contains("--uri-max-bytes"));

        let none = Roots::new(&[]).unwrap();
        assert!(none
            .read(&root.join("a.txt"), 100)
            .unwrap_err()
            .contains("no --file-root"));
        assert!(Roots::new(&[root.join("a.txt")]).is_err());
        assert!(Roots::new(&[PathBuf::from("relative")]).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
