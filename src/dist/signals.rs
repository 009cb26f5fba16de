//! Signals (placeholder).
pub fn stop_requested() -> bool {
    false
}
pub fn install() {}
