//! Who may transfer a zone from us, or NOTIFY us about it: source networks and/or TSIG keys.

use std::net::IpAddr;

use anyns_wire::Name;
use ipnet::IpNet;

/// One rule: a request matches if its source is in one of `networks` (any source when empty)
/// and, when `key` is set, it is signed with that key (verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    pub networks: Vec<IpNet>,
    pub key: Option<Name>,
}

/// A list of rules; a request is allowed if any rule matches. Empty allows nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub entries: Vec<AclEntry>,
}

impl Acl {
    pub fn new(entries: Vec<AclEntry>) -> Self {
        Acl { entries }
    }

    /// Allows the given addresses, unsigned.
    pub fn addresses(addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        Acl {
            entries: vec![AclEntry {
                networks: addrs.into_iter().map(IpNet::from).collect(),
                key: None,
            }],
        }
    }

    /// `client` is the request's source (IPv4-mapped IPv6 addresses count as IPv4); `key` the
    /// name of the TSIG key that verified the request, if any.
    pub fn allows(&self, client: IpAddr, key: Option<&Name>) -> bool {
        let client = client.to_canonical();
        self.entries.iter().any(|e| {
            let addr_ok = e.networks.is_empty() || e.networks.iter().any(|n| n.contains(&client));
            let key_ok = match &e.key {
                None => true,
                Some(required) => key == Some(required),
            };
            addr_ok && key_ok
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_and_key_rules() {
        let k = Name::from_text("xfr.").unwrap();
        let acl = Acl::new(vec![
            AclEntry {
                networks: vec!["192.0.2.0/24".parse().unwrap()],
                key: None,
            },
            AclEntry {
                networks: vec![],
                key: Some(k.clone()),
            },
        ]);
        assert!(acl.allows("192.0.2.7".parse().unwrap(), None));
        assert!(acl.allows("::ffff:192.0.2.7".parse().unwrap(), None));
        assert!(!acl.allows("198.51.100.1".parse().unwrap(), None));
        assert!(acl.allows("198.51.100.1".parse().unwrap(), Some(&k)));
        assert!(!Acl::default().allows("127.0.0.1".parse().unwrap(), Some(&k)));
    }
}
