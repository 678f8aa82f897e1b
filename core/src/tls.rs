//! TLS for every outbound client (object stores, the upstream registry, the HTTP log sink):
//! rustls over ring, with the platform's root certificates.

/// Makes ring the process's rustls crypto provider. Called before any HTTP client is built;
/// calling it again, or after an embedder installed a provider of its own, changes nothing.
pub fn install() {
    // An error only says a provider is already installed: that one is kept.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_can_be_built_after_install() {
        super::install();
        super::install();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        assert!(reqwest::Client::builder().build().is_ok());
    }
}
