//! Turning a verified client certificate into the identity string that request spans and
//! logs carry: the leaf's subject as an RFC 4514 string ("CN=alice,O=Acme"). Owns only the
//! formatting; verification happened in the handshake.

use rustls::pki_types::CertificateDer;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// The verified peer's identity for logs: the leaf's subject in RFC 4514 style, e.g.
/// `"CN=alice,O=Acme"` (most specific RDN first, as RFC 4514 orders them).
///
/// `None` when the certificate cannot be parsed or its subject is empty.
pub fn peer_subject(leaf: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let s = rfc4514(cert.subject());
    (!s.is_empty()).then_some(s)
}

/// RFC 4514 §2.1: RDNs in reverse order of the encoding, joined by ",";
/// multi-valued RDNs joined by "+".
fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<&_> = name.iter().collect();
    rdns.iter()
        .rev()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect::<Vec<_>>()
        .join(",")
}

fn attribute(atv: &AttributeTypeAndValue<'_>) -> String {
    let oid = atv.attr_type().to_id_string();
    let ty = short_name(&oid).unwrap_or(&oid);
    let value = match atv.as_str() {
        Ok(s) => escape(s),
        // RFC 4514 §2.4: values that are not strings are written as '#' + hex of their BER.
        Err(_) => {
            let der = {
                use x509_parser::asn1_rs::ToDer;
                atv.attr_value().to_der_vec().unwrap_or_default()
            };
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            format!("#{hex}")
        }
    };
    format!("{ty}={value}")
}

/// The names RFC 4514 §3 lists.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 4514 §2.4 escaping.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn cert_with(dn: &[(DnType, &str)]) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for (ty, v) in dn {
            name.push(ty.clone(), *v);
        }
        params.distinguished_name = name;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(peer_subject(&CertificateDer::from(vec![1, 2, 3])), None);
    }

    #[test]
    fn empty_subject_is_none() {
        assert_eq!(peer_subject(&cert_with(&[])), None);
    }

    #[test]
    fn most_specific_rdn_first() {
        let cert = cert_with(&[
            (DnType::OrganizationName, "Acme"),
            (DnType::CommonName, "alice"),
        ]);
        assert_eq!(peer_subject(&cert).as_deref(), Some("CN=alice,O=Acme"));
    }

    #[test]
    fn special_characters_escaped() {
        let cert = cert_with(&[(DnType::CommonName, "#a,b+c ")]);
        assert_eq!(peer_subject(&cert).as_deref(), Some("CN=\\#a\\,b\\+c\\ "));
    }

    #[test]
    fn escape_table() {
        for (input, want) in [
            ("", ""),
            ("plain", "plain"),
            (" lead", "\\ lead"),
            ("trail ", "trail\\ "),
            ("in side", "in side"),
            ("a\"b", "a\\\"b"),
            ("a;b<c>d\\", "a\\;b\\<c\\>d\\\\"),
            ("x#y", "x#y"),
        ] {
            assert_eq!(escape(input), want, "escape({input:?})");
        }
    }
}
