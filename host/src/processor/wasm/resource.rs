//! Host types behind WIT resources (named in `bindings.rs`'s `with:`).

/// Marker type of the WIT `store` resource; the rep is the store id.
pub struct StoreRes;
