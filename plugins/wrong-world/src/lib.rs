//! `wrong_world`: a valid component that exports `evil:other@0.1.0` world `other` (a bare
//! `hello: func() -> string`) instead of `arkflow:plugin/processor`, so the host can test that
//! it refuses components of the wrong world. Does not use the SDK.
wit_bindgen::generate!({ path: "wit", world: "other" });

struct WrongWorld;

impl Guest for WrongWorld {
    fn hello() -> String {
        "hello from the wrong world".to_string()
    }
}

export!(WrongWorld);
