//! The JSON shape of a message shared by `decode --json` and `encode --json`:
//!
//! ```json
//! {"profile": "cup-pos", "tpdu": "6000030000", "header": "603100310000", "mti": "0200",
//!  "fields": {"2": "622202*********0128", "3": "000000", "52": "…", "64": "…"}}
//! ```
//!
//! Numeric and track fields are digit strings (`=` separates track fields), `an`/`ans`
//! fields text, binary fields uppercase hexadecimal. `tpdu` and `header` are present only
//! for framed profiles.

use anyhow::{Context, bail};
use poskit_codec::describe::Options;
use poskit_codec::frame::{Header, Tpdu};
use poskit_codec::spec::Charset;
use poskit_codec::{Message, MessageBuilder, Mti, Profile, mask};
use serde_json::{Map, Value, json};

/// A decoded message as JSON; card data masked unless `options.unmask`.
pub fn to_json(frame: Option<(&Tpdu, &Header)>, message: &Message<'_>, options: Options) -> Value {
    let mut fields = Map::new();
    for field in message.fields() {
        let number = field.number();
        fields.insert(
            number.to_string(),
            Value::String(mask::shown(number, &field.to_text(), options.unmask)),
        );
    }
    let mut out = Map::new();
    out.insert("profile".into(), json!(message.profile().name));
    if let Some((tpdu, header)) = frame {
        out.insert("tpdu".into(), json!(poskit_codec::hex_upper(&tpdu.0)));
        out.insert("header".into(), json!(poskit_codec::hex_upper(&header.0)));
    }
    out.insert("mti".into(), json!(message.mti().as_str()));
    out.insert("fields".into(), Value::Object(fields));
    Value::Object(out)
}

/// A message read from JSON: the values in their logical form, owned.
pub struct Parsed {
    pub profile: &'static Profile,
    pub tpdu: Option<Tpdu>,
    pub header: Option<Header>,
    pub mti: Mti,
    pub fields: Vec<(u8, Vec<u8>)>,
}

impl Parsed {
    pub fn from_json(value: &Value, default_profile: &'static Profile) -> anyhow::Result<Parsed> {
        let object = value
            .as_object()
            .context("the message must be a JSON object")?;
        let profile = match object.get("profile") {
            None => default_profile,
            Some(Value::String(name)) => {
                Profile::by_name(name).with_context(|| format!("unknown profile {name:?}"))?
            }
            Some(_) => bail!("\"profile\" must be a string"),
        };
        let text = |key: &str| -> anyhow::Result<Option<&str>> {
            match object.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => bail!("{key:?} must be a string"),
            }
        };
        let tpdu = text("tpdu")?
            .map(|t| {
                Tpdu::from_hex(t).with_context(|| format!("tpdu must be 10 hex digits, got {t:?}"))
            })
            .transpose()?;
        let header = text("header")?
            .map(|h| {
                Header::from_hex(h)
                    .with_context(|| format!("header must be 12 hex digits, got {h:?}"))
            })
            .transpose()?;
        let mti_text = text("mti")?.context("\"mti\" is missing")?;
        let mti = Mti::parse(mti_text)
            .with_context(|| format!("mti must be 4 digits, got {mti_text:?}"))?;
        let fields_json = object
            .get("fields")
            .and_then(Value::as_object)
            .context("\"fields\" must be an object")?;
        let mut fields = Vec::with_capacity(fields_json.len());
        for (key, value) in fields_json {
            let number: u8 = key
                .parse()
                .ok()
                .filter(|n| (2..=128).contains(n))
                .with_context(|| format!("field key {key:?} is not a field number 2..128"))?;
            let spec = profile.field(number).with_context(|| {
                format!("field {number} is not defined in profile {}", profile.name)
            })?;
            let Value::String(s) = value else {
                bail!("field {number} must be a string");
            };
            if mask::sensitivity(number) == mask::Sensitivity::Secret && s.contains('*') {
                bail!(
                    "field {number} (PIN data) is never shown by decode: give the PIN block in hex, \
                     or build one with `poskit pinblock`"
                );
            }
            let bytes = if spec.charset == Charset::B {
                hex::decode(s.replace(' ', ""))
                    .with_context(|| format!("field {number} is binary: give it as hexadecimal"))?
            } else {
                s.as_bytes().to_vec()
            };
            fields.push((number, bytes));
        }
        fields.sort_by_key(|(n, _)| *n);
        Ok(Parsed {
            profile,
            tpdu,
            header,
            mti,
            fields,
        })
    }

    /// A builder over the parsed values (each checked against its field spec).
    pub fn builder(&self) -> anyhow::Result<MessageBuilder<'_>> {
        let mut builder = MessageBuilder::new(self.profile, self.mti);
        for (number, value) in &self.fields {
            builder.set(*number, value)?;
        }
        Ok(builder)
    }
}
