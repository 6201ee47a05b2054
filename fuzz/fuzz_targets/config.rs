//! Fuzz target: the service config loader, `config::Config::parse`, and
//! the engine settings derived from it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = trailwatch::config::Config::parse("fuzz.yaml", text) {
        let _ = config.engine.to_engine_config(false);
        let _ = config.engine.to_engine_config(true);
    }
});
