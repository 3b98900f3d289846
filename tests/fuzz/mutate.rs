//! The mutation engine: havoc-style byte mutations (bit flips, interesting values, length-field
//! tweaks, insert/delete/duplicate, truncation, dictionary tokens, splicing with another
//! input) plus mutations that know the input's shape (transport packets, length-prefixed
//! records, text lines), so most mutants stay close enough to the format to get past the
//! first checks of a parser.

/// How a target's input is framed, for the shape-aware mutations.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// No framing known: byte mutations only.
    Bytes,
    /// Fixed-size packets (MPEG-TS: 188 bytes).
    Packets(usize),
    /// Records of a big-endian u16 length and that many bytes (one datagram each).
    Records16,
    /// Text in lines (SDP, YAML).
    Text,
}

/// A small deterministic PRNG (SplitMix64): a run is reproduced by its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// FNV-1a, to seed per-input choices (how a stream is cut into reads) from the input itself.
pub fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

const INTERESTING: [u64; 22] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x3fff,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7f_ffff,
    0xff_ffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

const TEXT_NUMBERS: [&str; 12] = [
    "0",
    "-1",
    "1",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e308",
    "NaN",
    "-0",
];

const TEXT_CHARS: [u8; 18] =
    [b':', b'-', b'{', b'}', b'[', b']', b'&', b'*', b'!', b'"', b'\'', b'#', b'|', b'>', b'\t', 0, b'\r', b'\n'];

/// Mutates `buf` in place: a stack of 1 to 16 mutations. `pool` holds other inputs to splice
/// with; `dict` holds tokens of the format.
pub fn mutate(buf: &mut Vec<u8>, rng: &mut Rng, pool: &[Vec<u8>], dict: &[&[u8]], shape: Shape, max_len: usize) {
    let ops = 1 << rng.below(5);
    for _ in 0..ops {
        match rng.below(16) {
            0..=4 => shaped(buf, rng, pool, dict, shape),
            5 => splice(buf, rng, pool),
            _ => byte_op(buf, rng, dict),
        }
        if buf.len() > max_len {
            buf.truncate(max_len);
        }
    }
}

fn byte_op(buf: &mut Vec<u8>, rng: &mut Rng, dict: &[&[u8]]) {
    let len = buf.len();
    let pos = rng.below(len.max(1));
    match rng.below(12) {
        0 if len > 0 => buf[pos] ^= 1 << rng.below(8),
        1 if len > 0 => buf[pos] = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff, 0x47, 0x03]),
        2 if len > 0 => buf[pos] = rng.next_u64() as u8,
        3 if len > 0 => arith(buf, rng, pos),
        4 | 5 if len > 0 => length_field(buf, rng, pos),
        6 if len > 0 => {
            let n = 1 + rng.below(len.min(64));
            let at = rng.below(len - n + 1);
            buf.drain(at..at + n);
        }
        7 => {
            let n = 1 + rng.below(32);
            let fill: Vec<u8> = if rng.one_in(2) {
                (0..n).map(|_| rng.next_u64() as u8).collect()
            } else {
                vec![rng.next_u64() as u8; n * (1 + rng.below(8))]
            };
            let at = rng.below(len + 1);
            buf.splice(at..at, fill);
        }
        8 if len > 1 => {
            // Duplicate a range somewhere (repeats a header, a chunk, a line).
            let n = 1 + rng.below(len.min(512));
            let from = rng.below(len - n + 1);
            let copy = buf[from..from + n].to_vec();
            let times = if rng.one_in(8) { 1 + rng.below(64) } else { 1 };
            let at = rng.below(len + 1);
            buf.splice(at..at, copy.iter().copied().cycle().take(n * times));
        }
        9 if len > 1 => {
            let n = 1 + rng.below(len.min(64));
            let from = rng.below(len - n + 1);
            let to = rng.below(len - n + 1);
            buf.copy_within(from..from + n, to);
        }
        10 if len > 0 => buf.truncate(rng.below(len)),
        11 if !dict.is_empty() => {
            let token = *rng.pick(dict);
            let at = rng.below(len + 1);
            if rng.one_in(2) && at + token.len() <= len {
                buf[at..at + token.len()].copy_from_slice(token);
            } else {
                buf.splice(at..at, token.iter().copied());
            }
        }
        _ => {
            let at = rng.below(len + 1);
            buf.insert(at, rng.next_u64() as u8);
        }
    }
}

/// Adds or subtracts a small number to an 8/16/32-bit field, either byte order.
fn arith(buf: &mut [u8], rng: &mut Rng, pos: usize) {
    let width = *rng.pick(&[1usize, 2, 4]);
    if pos + width > buf.len() {
        return;
    }
    let delta = 1 + rng.below(35) as u64;
    let big = rng.one_in(2);
    let v = read(&buf[pos..pos + width], big);
    let v = if rng.one_in(2) { v.wrapping_add(delta) } else { v.wrapping_sub(delta) };
    write(&mut buf[pos..pos + width], v, big);
}

/// Overwrites an 8/16/24/32-bit field with a value a length or count field chokes on.
fn length_field(buf: &mut [u8], rng: &mut Rng, pos: usize) {
    let width = 1 + rng.below(4);
    if pos + width > buf.len() {
        return;
    }
    let big = !rng.one_in(4);
    let current = read(&buf[pos..pos + width], big);
    let rest = (buf.len() - pos) as u64;
    let v = match rng.below(6) {
        0 | 1 => *rng.pick(&INTERESTING),
        2 => rest.wrapping_add(rng.below(9) as u64).wrapping_sub(4),
        3 => current.wrapping_mul(2),
        4 => current / 2,
        _ => current.wrapping_add(rng.below(33) as u64).wrapping_sub(16),
    };
    write(&mut buf[pos..pos + width], v, big);
}

fn read(b: &[u8], big: bool) -> u64 {
    let fold = |acc: u64, &x: &u8| (acc << 8) | u64::from(x);
    if big {
        b.iter().fold(0, fold)
    } else {
        b.iter().rev().fold(0, fold)
    }
}

fn write(b: &mut [u8], v: u64, big: bool) {
    let n = b.len();
    for (i, byte) in b.iter_mut().enumerate() {
        let shift = if big { 8 * (n - 1 - i) } else { 8 * i };
        *byte = (v >> shift) as u8;
    }
}

/// Joins this input with a piece of another one.
fn splice(buf: &mut Vec<u8>, rng: &mut Rng, pool: &[Vec<u8>]) {
    let other = rng.pick(pool);
    if other.is_empty() {
        return;
    }
    let from = rng.below(other.len());
    let n = 1 + rng.below(other.len() - from);
    let at = rng.below(buf.len() + 1);
    if rng.one_in(2) {
        buf.truncate(at);
        buf.extend_from_slice(&other[from..]);
    } else {
        buf.splice(at..at, other[from..from + n].iter().copied());
    }
}

fn shaped(buf: &mut Vec<u8>, rng: &mut Rng, pool: &[Vec<u8>], dict: &[&[u8]], shape: Shape) {
    match shape {
        Shape::Bytes => byte_op(buf, rng, dict),
        Shape::Packets(size) => packets(buf, rng, size),
        Shape::Records16 => records(buf, rng, dict),
        Shape::Text => text(buf, rng, pool, dict),
    }
}

/// Mutations of whole packets, or of bytes inside one packet past its sync byte.
fn packets(buf: &mut Vec<u8>, rng: &mut Rng, size: usize) {
    let count = buf.len() / size;
    if count == 0 {
        return byte_op(buf, rng, &[]);
    }
    let i = rng.below(count) * size;
    match rng.below(6) {
        0 => {
            buf.drain(i..i + size);
        }
        1 => {
            let p = buf[i..i + size].to_vec();
            let j = rng.below(count + 1) * size;
            buf.splice(j..j, p);
        }
        2 => {
            let j = rng.below(count) * size;
            let (a, b) = (i.min(j), i.max(j));
            if a != b {
                let (left, right) = buf.split_at_mut(b);
                left[a..a + size].swap_with_slice(&mut right[..size]);
            }
        }
        _ => {
            // Inside the packet header or payload: keep the sync byte most of the time.
            let span = if rng.one_in(2) { 11 } else { size - 1 };
            let at = i + 1 + rng.below(span);
            if rng.one_in(2) {
                length_field(buf, rng, at);
            } else {
                buf[at] ^= 1 << rng.below(8);
            }
        }
    }
}

/// The record boundaries of a `u16 length + bytes` input (a short tail is left out).
fn record_spans(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut pos = 0;
    while pos + 2 <= buf.len() {
        let len = usize::from(u16::from_be_bytes([buf[pos], buf[pos + 1]]));
        if pos + 2 + len > buf.len() {
            break;
        }
        spans.push((pos, 2 + len));
        pos += 2 + len;
    }
    spans
}

/// Mutations of whole records, or of one record's body with its length kept right.
fn records(buf: &mut Vec<u8>, rng: &mut Rng, dict: &[&[u8]]) {
    let spans = record_spans(buf);
    if spans.is_empty() {
        return byte_op(buf, rng, dict);
    }
    let (start, len) = *rng.pick(&spans);
    match rng.below(5) {
        0 => {
            buf.drain(start..start + len);
        }
        1 => {
            let r = buf[start..start + len].to_vec();
            let (at, _) = *rng.pick(&spans);
            buf.splice(at..at, r);
        }
        2 => {
            let (other, other_len) = *rng.pick(&spans);
            if other > start + len {
                let a = buf[start..start + len].to_vec();
                let b = buf[other..other + other_len].to_vec();
                buf.splice(other..other + other_len, a);
                buf.splice(start..start + len, b);
            }
        }
        _ => {
            let mut body = buf[start + 2..start + len].to_vec();
            byte_op(&mut body, rng, dict);
            body.truncate(usize::from(u16::MAX));
            let mut record = (body.len() as u16).to_be_bytes().to_vec();
            record.extend_from_slice(&body);
            buf.splice(start..start + len, record);
        }
    }
}

/// Mutations of lines: drop, duplicate, swap, borrow from another input, odd numbers and
/// characters, indentation.
fn text(buf: &mut Vec<u8>, rng: &mut Rng, pool: &[Vec<u8>], dict: &[&[u8]]) {
    let mut lines: Vec<Vec<u8>> = buf.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.is_empty() {
        lines.push(Vec::new());
    }
    let i = rng.below(lines.len());
    match rng.below(9) {
        0 => {
            lines.remove(i);
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(rng.below(lines.len() + 1), l);
        }
        2 => {
            let j = rng.below(lines.len());
            lines.swap(i, j);
        }
        3 => {
            let other = rng.pick(pool);
            let theirs: Vec<&[u8]> = other.split_inclusive(|&b| b == b'\n').collect();
            if !theirs.is_empty() {
                lines.insert(i, rng.pick(&theirs).to_vec());
            }
        }
        4 => {
            // Replace a run of digits with an extreme number.
            let l = &mut lines[i];
            if let Some(s) = l.iter().position(u8::is_ascii_digit) {
                let e = s + l[s..].iter().take_while(|b| b.is_ascii_digit()).count();
                l.splice(s..e, rng.pick(&TEXT_NUMBERS).bytes());
            }
        }
        5 => {
            let l = &mut lines[i];
            let at = rng.below(l.len() + 1);
            l.insert(at, *rng.pick(&TEXT_CHARS));
        }
        6 => {
            let l = &mut lines[i];
            if rng.one_in(2) {
                l.splice(0..0, b"  ".iter().copied());
            } else if l.starts_with(b" ") {
                l.remove(0);
            }
        }
        7 if !dict.is_empty() => {
            let token = rng.pick(dict);
            let l = &mut lines[i];
            let at = if rng.one_in(2) { 0 } else { rng.below(l.len() + 1) };
            l.splice(at..at, token.iter().copied());
        }
        _ => {
            // Cut the line short (keeping its end of line).
            let l = &mut lines[i];
            let keep = rng.below(l.len() + 1);
            let eol = l.ends_with(b"\n");
            l.truncate(keep);
            if eol && !l.ends_with(b"\n") {
                l.push(b'\n');
            }
        }
    }
    *buf = lines.concat();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_back_in_both_byte_orders() {
        let mut b = [0u8; 3];
        write(&mut b, 0x01_02_03, true);
        assert_eq!(b, [1, 2, 3]);
        assert_eq!(read(&b, true), 0x01_02_03);
        write(&mut b, 0x01_02_03, false);
        assert_eq!(b, [3, 2, 1]);
        assert_eq!(read(&b, false), 0x01_02_03);
    }

    #[test]
    fn record_mutations_keep_the_framing() {
        let mut rng = Rng::new(7);
        let input = [0u8, 3, 1, 2, 3, 0, 1, 9];
        for _ in 0..1000 {
            let mut buf = input.to_vec();
            records(&mut buf, &mut rng, &[]);
            let covered: usize = record_spans(&buf).iter().map(|s| s.1).sum();
            assert_eq!(covered, buf.len(), "{buf:?}");
        }
    }
}
