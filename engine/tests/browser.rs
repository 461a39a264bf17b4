//! Runs the pages' tests (clients/pages/test) in headless Chromium, driven by playwright-core,
//! against this build of the server binary: two users chat, typing, presence, a direct
//! message's notification, a server restart with the pages rejoining once, history paging,
//! password rooms, rate-limit warnings, token sign-in, the playground, no console errors.
//! Screenshots of every page land in target/screenshots/.
//!
//! Needs Chromium (Debian's `chromium`, or `$CHROMIUM`) and `npm ci --prefix clients/pages`;
//! `.ci/run` installs both. Run only these: `cargo test --test browser`.

use std::path::Path;
use std::process::Command;

#[test]
fn the_pages_work_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/pages");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser tests need Chromium at {chromium} (apt-get install chromium, or set \
         CHROMIUM); `bash .ci/run` installs it"
    );
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "the browser tests need playwright-core: npm ci --prefix clients/pages \
         (`bash .ci/run` does it)"
    );
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    let out = Command::new("node")
        .args(["--experimental-websocket", "--test", "test/"])
        .current_dir(&dir)
        .env("CORECAST_BIN", env!("CARGO_BIN_EXE_corecast"))
        .env("CHROMIUM", &chromium)
        .env("CORECAST_SCREENSHOTS", &shots)
        .output()
        .expect("node (20 or later) runs the browser tests: install Node.js");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("# fail 0"), "{report}");
}
