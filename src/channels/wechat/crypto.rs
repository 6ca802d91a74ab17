//! WeChat's message crypto (WXBizMsgCrypt), shared by Official Accounts and
//! WeCom: SHA-1 signatures over the sorted parts, and AES-256-CBC with the
//! key's first 16 bytes as IV over `random(16) ‖ len(4, big-endian) ‖ xml ‖
//! receive id`, padded PKCS#7-style to a multiple of 32 bytes.
//!
//! NOTE: the padding is done by hand: a PKCS#7 unpadder for AES's 16-byte
//! block refuses pad values above 16, which about half of WeChat's
//! ciphertexts carry.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use sha1::{Digest, Sha1};

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// The block WeChat pads to.
const PAD_BLOCK: usize = 32;

/// Standard base64 that, like WeChat's own SDKs, accepts an EncodingAESKey
/// whose last character carries stray bits.
const KEY_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("encoding_aes_key must be 43 characters of [A-Za-z0-9+/]")]
    BadKey,
    #[error("the encrypted message is not base64 of whole AES blocks")]
    BadCiphertext,
    #[error("the decrypted message has an invalid padding or length")]
    BadPlaintext,
    #[error("the message is for another app or corp")]
    WrongReceiver,
}

/// `sha1(concat(sorted(parts)))` in lower-case hex: every WeChat signature.
pub fn signature(parts: &[&str]) -> String {
    let mut parts = parts.to_vec();
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// Whether `given` is the signature of `parts`, compared in constant time.
pub fn signature_matches(given: &str, parts: &[&str]) -> bool {
    crate::support::same_secret(&signature(parts), &given.to_ascii_lowercase())
}

/// One account's message key and the id its messages are addressed to (an
/// Official Account's AppId, a WeCom CorpID).
#[derive(Clone)]
pub struct MessageCrypto {
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for MessageCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCrypto").field("receive_id", &self.receive_id).finish_non_exhaustive()
    }
}

impl MessageCrypto {
    pub fn new(encoding_aes_key: &str, receive_id: &str) -> Result<MessageCrypto, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        let bytes = KEY_BASE64.decode(format!("{encoding_aes_key}=")).map_err(|_| CryptoError::BadKey)?;
        let key = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(MessageCrypto { key, receive_id: receive_id.to_string() })
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// The message inside `encrypted` (base64), checked to be addressed to this receiver.
    pub fn decrypt(&self, encrypted: &str) -> Result<String, CryptoError> {
        let mut buffer = base64::engine::general_purpose::STANDARD
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::BadCiphertext)?;
        if buffer.is_empty() || buffer.len() % 16 != 0 {
            return Err(CryptoError::BadCiphertext);
        }
        let plain = Decryptor::new(&self.key.into(), &self.iv().into())
            .decrypt_padded_mut::<NoPadding>(&mut buffer)
            .map_err(|_| CryptoError::BadCiphertext)?;
        let pad = usize::from(*plain.last().ok_or(CryptoError::BadPlaintext)?);
        if !(1..=PAD_BLOCK).contains(&pad) || pad > plain.len() {
            return Err(CryptoError::BadPlaintext);
        }
        let content = plain.get(16..plain.len() - pad).ok_or(CryptoError::BadPlaintext)?;
        let (length, rest) = content.split_first_chunk::<4>().ok_or(CryptoError::BadPlaintext)?;
        let length = u32::from_be_bytes(*length) as usize;
        if length > rest.len() {
            return Err(CryptoError::BadPlaintext);
        }
        let (message, receiver) = rest.split_at(length);
        if receiver != self.receive_id.as_bytes() {
            return Err(CryptoError::WrongReceiver);
        }
        String::from_utf8(message.to_vec()).map_err(|_| CryptoError::BadPlaintext)
    }

    /// `message` encrypted for the platform (base64), with `random` as its 16 leading bytes.
    pub fn encrypt(&self, message: &str, random: [u8; 16]) -> String {
        let mut plain = Vec::with_capacity(message.len() + self.receive_id.len() + 20 + PAD_BLOCK);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(self.receive_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.resize(plain.len() + pad, pad as u8);
        let length = plain.len();
        let cipher = Encryptor::new(&self.key.into(), &self.iv().into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, length)
            .expect("the plaintext is padded to whole blocks");
        base64::engine::general_purpose::STANDARD.encode(cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn round_trips_at_every_padding_length_and_checks_the_receiver() {
        let crypto = MessageCrypto::new(KEY, "wx1234567890abcdef").unwrap();
        let mut long_pads = 0;
        for n in 0..70 {
            let message = format!("<xml><Content><![CDATA[{}]]></Content></xml>", "退".repeat(n % 7) + &"a".repeat(n));
            let encrypted = crypto.encrypt(&message, [7; 16]);
            let plain_len = 16 + 4 + message.len() + "wx1234567890abcdef".len();
            long_pads += usize::from(PAD_BLOCK - plain_len % PAD_BLOCK > 16);
            assert_eq!(crypto.decrypt(&encrypted).unwrap(), message);
        }
        assert!(long_pads > 20, "pads above 16 bytes were exercised ({long_pads})");
        let other = MessageCrypto::new(KEY, "wx-other").unwrap();
        assert_eq!(other.decrypt(&crypto.encrypt("<xml/>", [1; 16])), Err(CryptoError::WrongReceiver));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let crypto = MessageCrypto::new(KEY, "wx1").unwrap();
        for bad in ["", "!!!", "AAAA", "AAAAAAAAAAAAAAAAAAAAAA==", &"A".repeat(64)] {
            assert!(crypto.decrypt(bad).is_err(), "{bad}");
        }
        assert_eq!(MessageCrypto::new("short", "wx1").unwrap_err(), CryptoError::BadKey);
        assert_eq!(MessageCrypto::new(&"*".repeat(43), "wx1").unwrap_err(), CryptoError::BadKey);
    }

    #[test]
    fn signatures_sort_their_parts() {
        // sha1("1409304348" + "nonce" + "token"), sorted as strings.
        let expected = hex::encode(Sha1::digest(b"1409304348noncetoken"));
        assert_eq!(signature(&["token", "1409304348", "nonce"]), expected);
        assert!(signature_matches(&expected.to_uppercase(), &["nonce", "token", "1409304348"]));
        assert!(!signature_matches("0", &["nonce", "token", "1409304348"]));
    }
}
