//! Finding and loading the ONNX Runtime library for `--engine ort`.
//!
//! The binary links no ONNX Runtime: the library is loaded when an ort
//! engine is first made, from the first of
//!
//! 1. `ORT_DYLIB_PATH`, when set: that file and nothing else (a wrong path
//!    is an error, never silently replaced by another library);
//! 2. a pip-installed `onnxruntime` or `onnxruntime-gpu` (both install the
//!    package `onnxruntime`): `onnxruntime/capi/libonnxruntime.so*` under the
//!    `site-packages` (or `dist-packages`) folders of `$VIRTUAL_ENV`,
//!    `$CONDA_PREFIX`, `~/.local`, `/usr/local` and `/usr`, in that order;
//! 3. `libonnxruntime.so` on the dynamic loader's path (`LD_LIBRARY_PATH`,
//!    the ldconfig cache: where a JetPack build of ONNX Runtime is installed).
//!
//! The library is loaded explicitly, before any other call into `ort`, so a
//! missing library, a file that is no ONNX Runtime, or one older than the
//! C API `ort` was built for (1.17) is one error line saying what was looked
//! for and how to install it; `ort`'s own lazy loading would panic instead.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use ort::LoadDynamicError;
use ort::environment::Environment;

/// How to get a library, for the error messages.
const INSTALL: &str = "install one with `pip install onnxruntime` (onnxruntime-gpu for CUDA) \
     or set ORT_DYLIB_PATH to a libonnxruntime.so";

/// The library in use and ONNX Runtime's environment (one per process).
pub struct Runtime {
    /// The library file loaded.
    pub path: PathBuf,
    /// The environment every session is made in.
    pub env: Environment,
}

/// The ONNX Runtime of this process, found as the module doc says and
/// loaded on first use.
pub fn runtime() -> Result<&'static Runtime> {
    runtime_from(None)
}

/// The ONNX Runtime of this process, loaded on first use from `library`
/// (as if it were `ORT_DYLIB_PATH`), or found as the module doc says when
/// `None`. The first call in a process decides, and a failure is kept: `ort`
/// loads one library per process, so a later call could not do better.
pub fn runtime_from(library: Option<&Path>) -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| load(library).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// Where the library is: `library`, else by the search order of the module
/// doc. The flag says whether it was named (by the caller or
/// `ORT_DYLIB_PATH`) rather than searched for.
fn locate(library: Option<&Path>) -> Result<(PathBuf, bool)> {
    let named = library.map(PathBuf::from).or_else(|| {
        std::env::var_os("ORT_DYLIB_PATH")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = named {
        if !path.is_file() {
            return Err(anyhow!(
                "ORT_DYLIB_PATH={}: no such file; {INSTALL}",
                path.display()
            ));
        }
        return Ok((path, true));
    }
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local"));
    let prefixes = ["VIRTUAL_ENV", "CONDA_PREFIX"]
        .iter()
        .filter_map(|v| {
            std::env::var_os(v)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        })
        .chain(home)
        .chain([PathBuf::from("/usr/local"), PathBuf::from("/usr")]);
    for prefix in prefixes {
        if let Some(lib) = pip_library(&prefix) {
            return Ok((lib, false));
        }
    }
    // Left to the loader's own search.
    Ok((PathBuf::from("libonnxruntime.so"), false))
}

/// `onnxruntime/capi/libonnxruntime.so*` in a Python prefix's package
/// folders (`lib/python3.*/site-packages`, Debian's `dist-packages`), as
/// `pip install onnxruntime` puts it there (a virtual environment is a
/// prefix): the unversioned name if the wheel has it, else the newest version.
pub fn pip_library(prefix: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for lib in ["lib", "lib64"] {
        let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else {
            continue;
        };
        let mut pythons: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3"))
            })
            .collect();
        pythons.sort();
        for python in pythons.iter().rev() {
            for packages in ["site-packages", "dist-packages"] {
                let capi = python.join(packages).join("onnxruntime/capi");
                let Ok(files) = std::fs::read_dir(&capi) else {
                    continue;
                };
                let mut libs: Vec<PathBuf> = files
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("libonnxruntime.so"))
                    })
                    .collect();
                libs.sort_by_key(|p| version_key(p));
                found.extend(libs.pop());
            }
        }
        if !found.is_empty() {
            break;
        }
    }
    found.into_iter().next()
}

/// Sort key of `libonnxruntime.so[.MAJOR.MINOR.PATCH]`: the unversioned name
/// (a link to the current one) last, so it is preferred.
fn version_key(path: &Path) -> (bool, Vec<u32>) {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let version = name.trim_start_matches("libonnxruntime.so");
    let parts = version
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect::<Vec<u32>>();
    (parts.is_empty(), parts)
}

/// Loads the library and makes the environment.
fn load(library: Option<&Path>) -> Result<Runtime> {
    let (path, named) = locate(library)?;
    let shown = path.display().to_string();
    // `ort` resolves a relative path against the executable's folder first;
    // an absolute path, or the bare name for the loader's search, is meant.
    let path = if path.components().count() > 1 {
        std::path::absolute(&path).unwrap_or(path)
    } else {
        path
    };
    let loaded = quietly(|| ort::init_from(&path))
        .map_err(|why| anyhow!("loading ONNX Runtime from {shown} panicked ({why}); {INSTALL}"))?;
    let builder = loaded.map_err(|e| match e {
        LoadDynamicError::Dlopen { .. } if !named && path.components().count() == 1 => {
            anyhow!(
                "no ONNX Runtime library found (ORT_DYLIB_PATH is unset; looked for \
                 onnxruntime/capi/libonnxruntime.so* in the Python site-packages of \
                 $VIRTUAL_ENV, $CONDA_PREFIX, ~/.local, /usr/local and /usr, then for \
                 libonnxruntime.so on the loader's path); {INSTALL}"
            )
        }
        LoadDynamicError::Dlopen { error, .. } => {
            anyhow!("cannot load ONNX Runtime from {shown} ({error}); {INSTALL}")
        }
        LoadDynamicError::MissingApi { .. } | LoadDynamicError::InvalidVersionString => {
            anyhow!("{shown} is not an ONNX Runtime library; {INSTALL}")
        }
        LoadDynamicError::BadVersion { version_str, .. } => anyhow!(
            "{shown} is ONNX Runtime {version_str}, older than the 1.{} this build needs; \
             install a newer one (`pip install -U onnxruntime`) or set ORT_DYLIB_PATH",
            ort::MINOR_VERSION
        ),
    })?;
    let env = quietly(|| builder.with_name("ecoedge").build())
        .map_err(|why| anyhow!("ONNX Runtime from {shown} panicked at start ({why})"))?
        .map_err(|e| anyhow!("ONNX Runtime from {shown} does not start ({e})"))?;
    Ok(Runtime { path, env })
}

/// Runs `f`, turning a panic into an error without printing it: `ort` asserts
/// on what a foreign library returns, and the command line promises one
/// error line. Only at load, before any other thread runs inference.
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_versioned_library_is_preferred_unless_unversioned() {
        let mut libs = [
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so",
            "libonnxruntime.so.1.17.3",
        ]
        .map(PathBuf::from);
        libs.sort_by_key(|p| version_key(p));
        assert_eq!(libs[2], PathBuf::from("libonnxruntime.so"));
        assert_eq!(libs[1], PathBuf::from("libonnxruntime.so.1.17.3"));
    }

    #[test]
    fn pip_wheels_are_found_in_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(pip_library(dir.path()), None);
        let capi = dir
            .path()
            .join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime.so.1.32.0"), "").unwrap();
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), "").unwrap();
        assert_eq!(
            pip_library(dir.path()),
            Some(capi.join("libonnxruntime.so.1.32.0"))
        );
    }
}
