//! The demo's Hugging Face hub (and, given a local chain, the demo subnet on it): serves the six
//! tiny models of `testdata/models/` on 127.0.0.1 and writes the stored metagraph whose
//! commitments point at them, with the test suite's fixtures (`tests/fixtures/demo.rs`).
//! `scripts/demo.sh` runs it in the background while the cycles download from it; it serves
//! until killed.
//!
//!     demo_hub CHECKOUT OUT_DIR [CHAIN_URL]
//!
//! reads the demo's data from the checkout given (not the one this binary was built from: a
//! `CARGO_TARGET_DIR` shared by two checkouts runs one checkout's build for the other), writes OUT_DIR/metagraph.parquet, OUT_DIR/wallets/ (with a chain) and, last, OUT_DIR/hub.url;
//! then keeps OUT_DIR/hub-requests.log current (the hub's and the CDN's requests).

#[path = "../tests/fixtures/chain.rs"]
mod chain;
#[path = "../tests/fixtures/demo.rs"]
mod demo;
#[path = "../tests/fixtures/hub.rs"]
#[allow(dead_code)]
mod hub;

use std::path::Path;

/// The demo profile's netuid (`testdata/demo/competitions.toml`): the first subnet a fresh local
/// chain registers.
const DEMO_NETUID: u16 = 2;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (checkout, out, chain_url) = match args.as_slice() {
        [_, checkout, out] => (Path::new(checkout), Path::new(out), None),
        [_, checkout, out, url] => (Path::new(checkout), Path::new(out), Some(url.as_str())),
        _ => anyhow::bail!("usage: demo_hub CHECKOUT OUT_DIR [CHAIN_URL]"),
    };
    let demo = demo::serve(checkout, out, DEMO_NETUID, chain_url)?;
    if let Some(netuid) = demo.netuid.filter(|n| *n != DEMO_NETUID) {
        anyhow::bail!("the demo subnet got netuid {netuid}, not {DEMO_NETUID}: the chain was not fresh");
    }
    std::fs::write(out.join("hub.url"), &demo.hub.url)?;
    // What the hub and its CDN were asked, for the demo to show: weights come through the
    // redirects as on huggingface.co, and no token reaches the CDN.
    let log = out.join("hub-requests.log");
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let lines = demo.hub.switches.log.lock().expect("the fixture does not panic holding it").join("\n");
        let leaked = demo.hub.switches.cdn_authorized.load(std::sync::atomic::Ordering::SeqCst);
        let tmp = out.join("hub-requests.log.tmp");
        std::fs::write(&tmp, format!("cdn-authorized {leaked}\n{lines}\n"))?;
        std::fs::rename(&tmp, &log)?;
    }
}
