//! The merchant ids of a day, each kept once: ten million records name a few thousand
//! merchants, and a record holds a four-byte reference instead of fifteen bytes.
//!
//! Each reader (the file's, each part of the ledger's) fills a table of its own; the tables
//! are then joined into one ([`Merchants::absorb`]) and the records' references renumbered.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use poskit_domain::Mid;

/// A merchant id of a [`Merchants`] table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MerchantRef(u32);

/// Merchant ids by reference, and the references by id and by the text they were read from.
#[derive(Clone, Debug, Default)]
pub struct Merchants {
    mids: Vec<Mid>,
    by_mid: HashMap<Mid, MerchantRef, RandomState>,
    /// Each text of a merchant id's width read, with the merchant it names (`None`: it
    /// names none): such a text is parsed once however many records carry it.
    by_text: HashMap<[u8; Mid::LEN], Option<MerchantRef>, RandomState>,
}

impl Merchants {
    /// The merchant `text` names, as `parse` reads it (the same text must always give the
    /// same answer: it is called once per distinct text of a merchant id's width, and for
    /// each text of another width, which a file's profile may pad to).
    pub fn intern(
        &mut self,
        text: &[u8],
        parse: impl FnOnce(&[u8]) -> Option<Mid>,
    ) -> Option<MerchantRef> {
        let Ok(fixed) = <[u8; Mid::LEN]>::try_from(text) else {
            return parse(text).map(|mid| self.add(mid));
        };
        if let Some(found) = self.by_text.get(&fixed) {
            return *found;
        }
        let found = parse(text).map(|mid| self.add(mid));
        self.by_text.insert(fixed, found);
        found
    }

    /// The reference of `mid`, added if new.
    pub fn add(&mut self, mid: Mid) -> MerchantRef {
        *self.by_mid.entry(mid).or_insert_with(|| {
            self.mids.push(mid);
            MerchantRef((self.mids.len() - 1) as u32)
        })
    }

    /// The merchant id of a reference of this table.
    pub fn mid(&self, r: MerchantRef) -> Mid {
        self.mids[r.0 as usize]
    }

    /// Takes `other`'s merchants in; returns what each of `other`'s references is here
    /// (renumber its records with [`Renumbering::of`]).
    pub fn absorb(&mut self, other: &Merchants) -> Renumbering {
        Renumbering(other.mids.iter().map(|&mid| self.add(mid)).collect())
    }
}

/// The references of one table in the table that absorbed it.
#[derive(Clone, Debug)]
pub struct Renumbering(Vec<MerchantRef>);

impl Renumbering {
    /// The new reference of `old`.
    pub fn of(&self, old: MerchantRef) -> MerchantRef {
        self.0[old.0 as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Option<Mid> {
        Mid::parse(std::str::from_utf8(text).ok()?).ok()
    }

    #[test]
    fn a_text_is_parsed_once_and_tables_join_by_merchant_id() {
        let mut a = Merchants::default();
        let x = a.intern(b"898310048160001", parse).unwrap();
        assert_eq!(a.intern(b"898310048160001", |_| unreachable!()), Some(x));
        assert_eq!(a.intern(b"89831004816\t0ab", parse), None);
        assert_eq!(a.intern(b"89831004816\t0ab", |_| unreachable!()), None);
        assert_eq!(a.intern(b"898310048160001  ", parse), None, "not trimmed");
        let padded = a.intern(b"898310048160001  ", |t| parse(t.trim_ascii()));
        assert_eq!(padded, Some(x), "a wider text, parsed each time");
        let mut b = Merchants::default();
        let y = b.intern(b"898310048160002", parse).unwrap();
        let z = b.intern(b"898310048160001", parse).unwrap();
        let renumbered = a.absorb(&b);
        assert_eq!(renumbered.of(z), x);
        assert_eq!(a.mid(renumbered.of(y)).as_str(), "898310048160002");
        assert_ne!(renumbered.of(y), x);
    }
}
