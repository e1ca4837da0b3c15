//! Whether a public key read for RS256 or ES256 can verify a token at all.
//! `jsonwebtoken` reads an RSA key of any size and an EC key on any curve,
//! while its verifier (`ring`: `RSA_PKCS1_2048_8192_SHA256` and
//! `ECDSA_P256_SHA256_FIXED`) takes RSA moduli of 2,048 to 8,192 bits and the
//! P-256 curve only. A key outside them would refuse every token as "signature
//! invalid" while the key file looked healthy, so it is refused (PEM) or
//! skipped (JWKS) when the file is read, with the size or curve named.

use std::ops::RangeInclusive;

use base64::Engine;
use jsonwebtoken::Algorithm;
use simple_asn1::ASN1Block;

/// RSA modulus sizes the verifier takes, in bits (`ring`'s RS256 bounds).
pub const RSA_MODULUS_BITS: RangeInclusive<u64> = 2_048..=8_192;

/// P-256 (`prime256v1`, `secp256r1`): RFC 5480 §2.1.1.1.
const P256: [u64; 7] = [1, 2, 840, 10045, 3, 1, 7];
/// Curves a key file may name that the verifier refuses, by OID (RFC 5480
/// §2.1.1.1; SEC 2 §A.2 for secp256k1), to name them in the refusal.
const OTHER_CURVES: [(&[u64], &str); 3] = [
    (&[1, 3, 132, 0, 34], "P-384"),
    (&[1, 3, 132, 0, 35], "P-521"),
    (&[1, 3, 132, 0, 10], "secp256k1"),
];

/// Why the DER of a PEM public key (SubjectPublicKeyInfo, or PKCS #1 for
/// RSA) that `jsonwebtoken` read for `algorithm` cannot verify a token, or
/// `None` when it can (or its structure is not one this reads: the
/// verifier has the last word then).
pub fn pem_key_unfit(der: &[u8], algorithm: Algorithm) -> Option<String> {
    let blocks = simple_asn1::from_der(der).ok()?;
    let [ASN1Block::Sequence(_, fields)] = blocks.as_slice() else {
        return None;
    };
    match (algorithm, fields.as_slice()) {
        // PKCS #1 RSAPublicKey (RFC 8017 A.1.1): modulus, exponent.
        (Algorithm::RS256, [ASN1Block::Integer(_, modulus), ASN1Block::Integer(..)]) => {
            rsa_modulus_unfit(modulus.bits())
        }
        // SubjectPublicKeyInfo (RFC 5280 4.1): algorithm, subjectPublicKey.
        (Algorithm::RS256, [ASN1Block::Sequence(..), ASN1Block::BitString(_, _, key)]) => {
            pem_key_unfit(key, Algorithm::RS256)
        }
        (Algorithm::ES256, [ASN1Block::Sequence(_, identifier), ASN1Block::BitString(..)]) => {
            let [ASN1Block::ObjectIdentifier(..), ASN1Block::ObjectIdentifier(_, curve)] =
                identifier.as_slice()
            else {
                return None;
            };
            let curve: Vec<u64> = curve.as_vec().ok()?;
            (curve != P256).then(|| {
                let name = OTHER_CURVES
                    .iter()
                    .find(|(oid, _)| *oid == curve.as_slice())
                    .map_or_else(
                        || {
                            let dotted: Vec<String> = curve.iter().map(u64::to_string).collect();
                            format!("OID {}", dotted.join("."))
                        },
                        |(_, name)| (*name).to_owned(),
                    );
                format!("an EC key on curve {name}: only P-256 (ES256) is accepted")
            })
        }
        _ => None,
    }
}

/// Why the JWK `n` (an RSA modulus, base64url without padding, RFC 7518
/// §6.3.1.1) cannot verify a token, or `None` when it can (or it is not
/// base64url: the JWK parser refuses it then).
pub fn jwk_modulus_unfit(modulus: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(modulus)
        .ok()?;
    let significant = bytes.iter().position(|byte| *byte != 0)?;
    let leading = u64::from(bytes[significant].leading_zeros());
    let bits = (bytes.len() - significant) as u64 * 8 - leading;
    rsa_modulus_unfit(bits)
}

fn rsa_modulus_unfit(bits: u64) -> Option<String> {
    (!RSA_MODULUS_BITS.contains(&bits)).then(|| {
        format!(
            "an RSA key of {bits} bits: RS256 keys of {} to {} bits are accepted",
            RSA_MODULUS_BITS.start(),
            RSA_MODULUS_BITS.end()
        )
    })
}
