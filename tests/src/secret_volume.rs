//! A folder laid out like a Kubernetes Secret volume, updated the way the
//! kubelet does it: files live in a timestamped folder, `..data` is a
//! symlink to it, and each file is a symlink through `..data`. An update
//! writes a new folder and swaps `..data` with one atomic rename.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

pub struct SecretVolume {
    dir: PathBuf,
    version: AtomicU32,
}

impl SecretVolume {
    /// Creates the volume in `dir` with `files` (name, contents).
    pub fn create(dir: &Path, files: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(dir).expect("volume dir");
        let volume = Self { dir: dir.to_owned(), version: AtomicU32::new(0) };
        volume.update(files);
        for (name, _) in files {
            symlink(Path::new("..data").join(name), dir.join(name)).expect("file symlink");
        }
        volume
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Publishes a new version of every file at once.
    pub fn update(&self, files: &[(&str, &str)]) {
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let folder = format!("..2026_11_24_v{version}");
        std::fs::create_dir(self.dir.join(&folder)).expect("version dir");
        for (name, contents) in files {
            std::fs::write(self.dir.join(&folder).join(name), contents).expect("write");
        }
        let tmp = self.dir.join("..data_tmp");
        symlink(&folder, &tmp).expect("tmp symlink");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("atomic swap");
        if version > 1 {
            let _ = std::fs::remove_dir_all(self.dir.join(format!("..2026_11_24_v{}", version - 1)));
        }
    }
}
