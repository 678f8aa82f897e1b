//! Identifiers the core makes up: request ids where the platform gives none, and random names.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::fnv1a;

/// 64 random bits from the operating system; the clock's when it has none to give.
pub(crate) fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => fnv1a(&clock_nanos().to_le_bytes()) ^ u64::from(std::process::id()),
    }
}

fn clock_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A request id for a request the platform gave none: unique within the process.
pub(crate) fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", fnv1a(&clock_nanos().to_le_bytes()) ^ n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_differ() {
        assert_ne!(super::new_request_id(), super::new_request_id());
    }
}
