//! The node's persistent identity key and the private-network key file.

use std::path::Path;

use libp2p::identity::Keypair;
use libp2p::pnet::PreSharedKey;

use super::NetworkError;

/// Loads the node's ed25519 key from `path`, creating it (mode 0600) on first start.
pub fn load_or_create_keypair(path: &Path) -> Result<Keypair, NetworkError> {
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            NetworkError::Key(format!("{}: not a valid identity key: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| NetworkError::Key(format!("cannot encode a new identity key: {e}")))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| NetworkError::Key(format!("{}: {e}", dir.display())))?;
            }
            write_private(path, &bytes)?;
            Ok(key)
        }
        Err(e) => Err(NetworkError::Key(format!("{}: {e}", path.display()))),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NetworkError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .map_err(|e| NetworkError::Key(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| NetworkError::Key(format!("{}: {e}", path.display())))
}

/// Reads a pre-shared key in the go-libp2p `swarm.key` format.
pub fn read_psk(path: &Path) -> Result<PreSharedKey, NetworkError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| NetworkError::Key(format!("{}: {e}", path.display())))?;
    text.parse().map_err(|e| {
        NetworkError::Key(format!(
            "{}: not a pre-shared key file ({e:?}); make one with `meshml secret new`",
            path.display()
        ))
    })
}

/// A new random pre-shared key, in file form.
pub fn new_psk() -> String {
    let mut bytes = [0u8; 32];
    // The identity key generator is a CSPRNG; take key material from a fresh ed25519 secret.
    let k = libp2p::identity::ed25519::SecretKey::generate();
    bytes.copy_from_slice(k.as_ref());
    PreSharedKey::new(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_persists_and_keys_parse() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("identity.key");
        let a = load_or_create_keypair(&p).unwrap();
        let b = load_or_create_keypair(&p).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        std::fs::write(dir.path().join("bad.key"), b"junk").unwrap();
        assert!(load_or_create_keypair(&dir.path().join("bad.key")).is_err());

        let psk_path = dir.path().join("swarm.key");
        std::fs::write(&psk_path, new_psk()).unwrap();
        let k = read_psk(&psk_path).unwrap();
        assert_ne!(new_psk(), k.to_string(), "keys are random");
        std::fs::write(&psk_path, "hello").unwrap();
        assert!(read_psk(&psk_path)
            .unwrap_err()
            .to_string()
            .contains("meshml secret new"));
    }
}
