//! The validator's hotkey, read from the bittensor wallet layout (chain.md §4):
//! `<wallets>/<wallet>/hotkeys/<hotkey>`, an unencrypted JSON file. The loader takes
//! `secretPhrase`, else `secretSeed`, as bittensor-wallet does; a file that group or others can
//! read is refused, and no secret ever reaches a message or a log.

use std::path::{Path, PathBuf};

use subxt::utils::AccountId32;
use subxt_signer::sr25519::Keypair;
use zeroize::{Zeroize, Zeroizing};

/// Larger than any keyfile; a bigger file is not one.
const MAX_KEYFILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("hotkey file {path}: {reason}")]
    Io { path: PathBuf, reason: std::io::Error },
    #[error("hotkey file {path} is accessible by group or others (mode {mode:o}); run: chmod 600 {path}")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("hotkey file {path}: {detail}")]
    Format { path: PathBuf, detail: String },
}

/// Where bittensor keeps wallets unless told otherwise.
pub fn default_wallets_dir() -> PathBuf {
    crate::env::home().join(".bittensor").join("wallets")
}

pub fn hotkey_path(wallets_dir: &Path, wallet: &str, hotkey: &str) -> PathBuf {
    wallets_dir.join(wallet).join("hotkeys").join(hotkey)
}

/// The hotkey `hotkey` of wallet `wallet` under `wallets_dir` (default: bittensor's).
pub fn load_named(wallets_dir: Option<&Path>, wallet: &str, hotkey: &str) -> Result<Hotkey, Error> {
    let wallets = wallets_dir.map_or_else(default_wallets_dir, Path::to_path_buf);
    load_hotkey(&hotkey_path(&wallets, wallet, hotkey))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFile {
    secret_phrase: Option<String>,
    secret_seed: Option<String>,
    ss58_address: Option<String>,
}

/// The secrets are overwritten once the key is built (the keypair itself zeroizes on drop).
impl Drop for KeyFile {
    fn drop(&mut self) {
        self.secret_phrase.zeroize();
        self.secret_seed.zeroize();
    }
}

pub struct Hotkey {
    pub keypair: Keypair,
    pub account: AccountId32,
}

impl Hotkey {
    pub fn ss58(&self) -> String {
        self.account.to_string()
    }
}

pub fn load_hotkey(path: &Path) -> Result<Hotkey, Error> {
    let io = |reason| Error::Io { path: path.to_path_buf(), reason };
    let format = |detail: String| Error::Format { path: path.to_path_buf(), detail };
    let metadata = std::fs::metadata(path).map_err(io)?;
    check_permissions(path, &metadata)?;
    if !metadata.is_file() || metadata.len() > MAX_KEYFILE_BYTES {
        return Err(format("not a hotkey file (a directory, or larger than 64 KiB)".into()));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    if text.starts_with("$NACL") || text.starts_with("$ANSIBLE_VAULT") || text.starts_with("gAAAAA") {
        return Err(format("the key is encrypted; valkit reads unencrypted hotkeys only (as the validator's hotkey normally is)".into()));
    }
    // serde_json's error names a position, never the content, so no secret leaks through it.
    let file: KeyFile = serde_json::from_str(&text).map_err(|e| format(format!("not bittensor keyfile JSON ({e})")))?;
    let keypair = if let Some(phrase) = &file.secret_phrase {
        let mnemonic =
            subxt_signer::bip39::Mnemonic::parse(phrase).map_err(|_| format("secretPhrase is not a valid BIP39 mnemonic".into()))?;
        Keypair::from_phrase(&mnemonic, None).map_err(|_| format("secretPhrase does not give an sr25519 key".into()))?
    } else if let Some(seed) = &file.secret_seed {
        let bytes = Zeroizing::new(hex::decode(seed.trim_start_matches("0x")).unwrap_or_default());
        let seed = Zeroizing::new(
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| format("secretSeed is not 0x followed by 64 hex digits".into()))?,
        );
        Keypair::from_secret_key(*seed).map_err(|_| format("secretSeed does not give an sr25519 key".into()))?
    } else {
        return Err(format("neither secretPhrase nor secretSeed is present (a public-only key cannot sign)".into()));
    };
    let account = AccountId32::from(keypair.public_key().0);
    if let Some(expected) = &file.ss58_address {
        if *expected != account.to_string() {
            return Err(format(format!("its secret gives {account}, but its ss58Address says {expected}")));
        }
    }
    Ok(Hotkey { keypair, account })
}

#[cfg(unix)]
fn check_permissions(path: &Path, metadata: &std::fs::Metadata) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Permissions { path: path.to_path_buf(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path, _: &std::fs::Metadata) -> Result<(), Error> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// chain.md §4: the BIP39 test mnemonic and the seed bittensor-wallet derives from it.
    const PHRASE: &str = "legal winner thank year wave sausage worth useful legal winner thank yellow";
    const SEED: &str = "0x6fa2796b0071cac425d8a7851038318c2c37dcebfe4bae73197ce93e75909bd2";
    const SS58: &str = "5EHgWw2Af1pnoc7f1A8bfmM97W3DAYW8xr82RfhLL9oAabAe";

    fn write_key(dir: &Path, name: &str, json: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, json).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn phrase_and_seed_give_the_wallets_address() {
        let dir = tempfile::tempdir().unwrap();
        let phrase = write_key(dir.path(), "a", &format!(r#"{{"secretPhrase":"{PHRASE}","ss58Address":"{SS58}"}}"#), 0o600);
        assert_eq!(load_hotkey(&phrase).unwrap().ss58(), SS58);
        let seed = write_key(dir.path(), "b", &format!(r#"{{"secretSeed":"{SEED}"}}"#), 0o600);
        assert_eq!(load_hotkey(&seed).unwrap().ss58(), SS58);
    }

    #[test]
    fn refuses_open_files_and_keeps_secrets_out_of_messages() {
        let dir = tempfile::tempdir().unwrap();
        let open = write_key(dir.path(), "open", &format!(r#"{{"secretSeed":"{SEED}"}}"#), 0o644);
        let err = load_hotkey(&open).err().unwrap().to_string();
        assert!(err.contains("mode 644") && err.contains("chmod 600"), "{err}");
        let wrong = write_key(dir.path(), "wrong", &format!(r#"{{"secretSeed":"{SEED}","ss58Address":"5Fake"}}"#), 0o600);
        let err = load_hotkey(&wrong).err().unwrap().to_string();
        assert!(err.contains("5Fake") && !err.contains(&SEED[2..]), "{err}");
        let public = write_key(dir.path(), "pub", &format!(r#"{{"ss58Address":"{SS58}"}}"#), 0o600);
        assert!(load_hotkey(&public).err().unwrap().to_string().contains("cannot sign"));
        let bad_phrase = write_key(dir.path(), "bad", r#"{"secretPhrase":"legal winner secret words"}"#, 0o600);
        let err = load_hotkey(&bad_phrase).err().unwrap().to_string();
        assert!(!err.contains("secret words"), "{err}");
        let encrypted = write_key(dir.path(), "enc", "$NACL0123", 0o600);
        assert!(load_hotkey(&encrypted).err().unwrap().to_string().contains("encrypted"));
    }
}
