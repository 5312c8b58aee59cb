//! The release zips as Lambda gets them: each at most 5 MB (docs/performance.md: upload time
//! and cold start grow with the zip), a `bootstrap` executable at the root, and no glibc symbol
//! newer than provided.al2023's glibc 2.34 (a binary linked against the build machine's newer
//! glibc would fail on Lambda with "version `GLIBC_2.xx' not found", which the local target,
//! running the zip on this machine, would never show). Runs when the zips are built; fails
//! instead of skipping with STT_REQUIRE_ZIPS=1.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

const HANDLERS: [&str; 6] = [
    "file_upload",
    "audio_transcribe",
    "save_text",
    "send_email",
    "db_migrate",
    "vod_convert",
];
const MAX_ZIP_BYTES: u64 = 5_000_000;
/// Amazon Linux 2023's glibc (the provided.al2023 runtime).
const RUNTIME_GLIBC: (u32, u32) = (2, 34);

fn zip_path(handler: &str) -> Option<PathBuf> {
    let zip = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/lambda")
        .join(handler)
        .join("bootstrap.zip");
    if zip.exists() {
        return Some(zip);
    }
    let msg = format!("{} is missing: run `make zips`", zip.display());
    if std::env::var("STT_REQUIRE_ZIPS").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    None
}

/// The highest `GLIBC_x.y` version among the binary's dynamic symbols (objdump -T).
fn newest_glibc(binary: &std::path::Path) -> Option<(u32, u32)> {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .expect("objdump (binutils) runs");
    assert!(
        out.status.success(),
        "objdump failed on {}",
        binary.display()
    );
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
}

#[test]
fn every_zip_fits_lambda_and_its_runtime() {
    let dir = tempdir();
    for handler in HANDLERS {
        let Some(zip) = zip_path(handler) else { return };
        let size = std::fs::metadata(&zip).unwrap().len();
        assert!(
            size <= MAX_ZIP_BYTES,
            "{handler}: {size} bytes, over {MAX_ZIP_BYTES} (docs/performance.md, zip size)"
        );
        // The archive holds exactly one entry, `bootstrap`, executable.
        let listing = Command::new("unzip").arg("-Z1").arg(&zip).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&listing.stdout).trim(), "bootstrap");
        let out = Command::new("unzip")
            .args(["-o", "-q"])
            .arg(&zip)
            .arg("-d")
            .arg(dir.join(handler))
            .status()
            .unwrap();
        assert!(out.success());
        let bootstrap = dir.join(handler).join("bootstrap");
        let mut head = [0u8; 4];
        std::fs::File::open(&bootstrap)
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        assert_eq!(
            &head, b"\x7fELF",
            "{handler}: bootstrap is not an ELF executable"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bootstrap).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{handler}: bootstrap is not executable");
        let glibc = newest_glibc(&bootstrap).expect("a glibc-linked binary names GLIBC_ versions");
        assert!(
            glibc <= RUNTIME_GLIBC,
            "{handler}: needs GLIBC_{}.{}, provided.al2023 has {}.{}",
            glibc.0,
            glibc.1,
            RUNTIME_GLIBC.0,
            RUNTIME_GLIBC.1
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_glibc_version_is_read_from_objdump_output() {
    // objdump's own output for a system binary names GLIBC versions; the newest is found and
    // is at least 2.2.5 (every x86_64 glibc binary has it).
    let newest = newest_glibc(std::path::Path::new("/bin/ls")).unwrap();
    assert!(newest >= (2, 2), "{newest:?}");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("provision-zips-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
