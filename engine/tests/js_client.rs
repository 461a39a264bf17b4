//! Runs the JS client's tests (clients/js/test, Node's test runner) against this build of the
//! server binary: reconnection with the server killed and restarted, rejoin, the send
//! buffer's limit, request/response, the heartbeat and every helper, over real sockets.

use std::path::Path;
use std::process::Command;

#[test]
fn the_js_client_passes_its_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js");
    let out = Command::new("node")
        .args(["--experimental-websocket", "--test", "test/"])
        .current_dir(&dir)
        .env("CORECAST_BIN", env!("CARGO_BIN_EXE_corecast"))
        .output()
        .expect("node (20 or later) runs the JS client's tests: install Node.js");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the JS client's tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("# fail 0"), "{report}");
}
