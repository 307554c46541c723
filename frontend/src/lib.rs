//! The browser entry point: hydrates the server-rendered page.
// Leptos views are nested types; without erased components (release
// builds) the board's type is deeper than rustc's default limit of 128.
#![recursion_limit = "256"]

/// Called by the generated JavaScript once the WASM module is loaded.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
