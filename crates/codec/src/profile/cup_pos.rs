//! The China UnionPay POS profile (`spec/cup-pos.md` §2): packed BCD numbers, BCD length
//! prefixes (1 byte LL, 2 bytes LLL), ASCII text, raw binary, a primary bitmap only, and the
//! CUP framing (length, TPDU, header).

use crate::spec::Charset::{An, Ans, B, N, Z};
use crate::spec::{
    Align, BinaryEncoding, BitmapEncoding, FieldSpec, Framing, NumberEncoding, Profile, fixed,
    lllvar, llvar, ops_of, specs_of,
};

/// Field 22 is the one fixed numeric field written left-aligned (`021` → `02 10`).
const fn left_aligned(mut spec: FieldSpec) -> FieldSpec {
    spec.align = Align::Left;
    spec
}

static FIELDS: &[FieldSpec] = &[
    llvar(2, N, 19, "Primary account number", "主账号"),
    fixed(3, N, 6, "Processing code", "交易处理码"),
    fixed(4, N, 12, "Amount, transaction", "交易金额"),
    fixed(11, N, 6, "System trace audit number", "受卡方系统跟踪号"),
    fixed(12, N, 6, "Time, local transaction", "受卡方所在地时间"),
    fixed(13, N, 4, "Date, local transaction", "受卡方所在地日期"),
    fixed(14, N, 4, "Date, expiration", "卡有效期"),
    fixed(15, N, 4, "Date, settlement", "清算日期"),
    left_aligned(fixed(
        22,
        N,
        3,
        "Point of service entry mode",
        "服务点输入方式码",
    )),
    fixed(23, N, 3, "Card sequence number", "卡序列号"),
    fixed(25, N, 2, "Point of service condition code", "服务点条件码"),
    fixed(
        26,
        N,
        2,
        "Point of service PIN capture code",
        "服务点PIN获取码",
    ),
    llvar(
        32,
        N,
        11,
        "Acquiring institution identification code",
        "受理方标识码",
    ),
    llvar(35, Z, 37, "Track 2 data", "2磁道数据"),
    lllvar(36, Z, 104, "Track 3 data", "3磁道数据"),
    fixed(37, An, 12, "Retrieval reference number", "检索参考号"),
    fixed(
        38,
        An,
        6,
        "Authorization identification response",
        "授权标识应答码",
    ),
    fixed(39, An, 2, "Response code", "应答码"),
    fixed(
        41,
        Ans,
        8,
        "Card acceptor terminal identification",
        "受卡机终端标识码",
    ),
    fixed(
        42,
        Ans,
        15,
        "Card acceptor identification code",
        "受卡方标识码",
    ),
    llvar(44, An, 25, "Additional response data", "附加响应数据"),
    lllvar(48, N, 322, "Additional data, private", "附加数据-私有"),
    fixed(49, An, 3, "Currency code, transaction", "交易货币代码"),
    fixed(52, B, 8, "PIN data", "个人标识码数据"),
    fixed(
        53,
        N,
        16,
        "Security related control information",
        "安全控制信息",
    ),
    lllvar(54, An, 40, "Additional amounts", "附加金额"),
    lllvar(55, B, 255, "ICC system related data", "IC卡数据域"),
    lllvar(
        60,
        N,
        17,
        "Reserved private (type, batch, network code)",
        "自定义域",
    ),
    lllvar(61, N, 29, "Original message data", "原始信息域"),
    lllvar(
        62,
        B,
        512,
        "Reserved private (keys, terminal data)",
        "自定义域",
    ),
    lllvar(
        63,
        Ans,
        163,
        "Reserved private (operator, scheme)",
        "自定义域",
    ),
    fixed(64, B, 8, "Message authentication code", "报文鉴别码"),
];

const SECONDARY_BITMAP: bool = false;
const NUMBERS: NumberEncoding = NumberEncoding::Bcd;
const BINARY: BinaryEncoding = BinaryEncoding::Raw;

/// China UnionPay POS terminal ↔ acquirer profile.
pub static CUP_POS: Profile = Profile {
    name: "cup-pos",
    description: "China UnionPay POS: packed BCD, BCD length prefixes, TPDU + header framing",
    mti: NumberEncoding::Bcd,
    numbers: NUMBERS,
    binary: BINARY,
    bitmap: BitmapEncoding::Binary,
    secondary_bitmap: SECONDARY_BITMAP,
    framing: Framing::CupPos,
    mac_field: Some(64),
    mac_algorithm: Some("cup-ecb"),
    fields: FIELDS,
    specs: specs_of(FIELDS),
    ops: ops_of(FIELDS, NUMBERS, BINARY, SECONDARY_BITMAP),
};
