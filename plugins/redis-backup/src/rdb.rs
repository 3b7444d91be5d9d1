//! Is an RDB file whole? The header (`REDIS` or `VALKEY` and a four-digit
//! version), the end (the `EOF` opcode `0xFF` and, from version 5, the
//! CRC-64 of everything before it, little-endian), and the checksum
//! itself, read in a stream so that a file of any size needs a small
//! buffer. The record structure in between is not parsed: the checksum
//! covers it.

use std::io::Read;

/// The RDB format version newest this probe knows (Redis 7.4; Valkey 8
/// writes 11). A newer one is checked all the same, and said.
pub const NEWEST_KNOWN: u32 = 12;

/// Redis's CRC-64 (Jones coefficients, reflected, init 0).
const CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// What a file's check found.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Header, end and checksum all right.
    Valid { version: u32 },
    /// Written with `rdbchecksum no` (the checksum is 0): the header and
    /// end are right but the contents cannot be checked.
    Unchecked { version: u32 },
    /// Not a usable RDB file: why.
    Invalid(String),
}

/// Check the RDB stream `file` of `len` bytes.
pub fn check(mut file: impl Read, len: u64) -> std::io::Result<Verdict> {
    let mut header = [0u8; 9];
    let header_len = read_up_to(&mut file, &mut header)?;
    let digits = match &header[..header_len] {
        [b'R', b'E', b'D', b'I', b'S', rest @ ..] if rest.len() == 4 => rest.to_vec(),
        // Valkey 9 and later: `VALKEY` and three digits.
        [b'V', b'A', b'L', b'K', b'E', b'Y', rest @ ..] if rest.len() == 3 => rest.to_vec(),
        _ => {
            return Ok(Verdict::Invalid(
                "no RDB header (`REDIS` and a version): not an RDB file, or its start is lost"
                    .into(),
            ));
        }
    };
    let version = match std::str::from_utf8(&digits)
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
    {
        Some(v) if v >= 1 => v,
        _ => {
            return Ok(Verdict::Invalid(format!(
                "the header's version {:?} is not a number",
                String::from_utf8_lossy(&digits)
            )));
        }
    };
    if version < 5 {
        // No checksum before version 5: the end alone.
        let mut tail = [0u8; 1];
        let rest = read_tail(&mut file, len, header_len as u64, &mut tail, None)?;
        return Ok(match rest {
            Some(()) if tail[0] == 0xFF => Verdict::Unchecked { version },
            _ => Verdict::Invalid("truncated: no EOF opcode at its end".into()),
        });
    }
    if len < header_len as u64 + 9 {
        return Ok(Verdict::Invalid(format!(
            "truncated: {len} bytes, too short for an RDB file's end"
        )));
    }
    let mut digest = CRC.digest();
    digest.update(&header[..header_len]);
    let mut tail = [0u8; 9];
    read_tail(
        &mut file,
        len,
        header_len as u64,
        &mut tail,
        Some(&mut digest),
    )?
    .ok_or_else(|| std::io::Error::other("the file ended before its length"))?;
    if tail[0] != 0xFF {
        return Ok(Verdict::Invalid(
            "truncated: no EOF opcode before the checksum at its end".into(),
        ));
    }
    // The EOF opcode is covered by the checksum.
    digest.update(&tail[..1]);
    let stored = u64::from_le_bytes(tail[1..].try_into().expect("8 bytes"));
    if stored == 0 {
        return Ok(Verdict::Unchecked { version });
    }
    let computed = digest.finalize();
    if stored != computed {
        return Ok(Verdict::Invalid(format!(
            "checksum mismatch: the file says {stored:016x}, its contents give {computed:016x} \
             (corrupted or truncated)"
        )));
    }
    Ok(Verdict::Valid { version })
}

/// Fill `buf` as far as the stream goes; the bytes read.
fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Read the rest of the stream (`len` bytes in all, `done` of them read):
/// everything but the last `tail.len()` bytes into `digest`, those into
/// `tail`. None when the stream is shorter than that.
fn read_tail(
    file: &mut impl Read,
    len: u64,
    done: u64,
    tail: &mut [u8],
    mut digest: Option<&mut crc::Digest<'_, u64>>,
) -> std::io::Result<Option<()>> {
    let Some(mut body) = len.checked_sub(done + tail.len() as u64) else {
        return Ok(None);
    };
    let mut buf = vec![0u8; 64 * 1024];
    while body > 0 {
        let want = body.min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(digest) = digest.as_deref_mut() {
            digest.update(&buf[..n]);
        }
        body -= n as u64;
    }
    Ok((read_up_to(file, tail)? == tail.len()).then_some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal RDB file of `version`: header, an aux field, EOF, CRC.
    fn rdb(version: u32) -> Vec<u8> {
        let mut data = format!("REDIS{version:04}").into_bytes();
        data.extend([0xFA, 3, b'a', b'b', b'c', 1, b'x']);
        data.push(0xFF);
        let crc = CRC.checksum(&data);
        data.extend(crc.to_le_bytes());
        data
    }

    fn verdict(data: &[u8]) -> Verdict {
        check(data, data.len() as u64).unwrap()
    }

    #[test]
    fn the_crc_is_redis_crc64() {
        // The check value of CRC-64/Jones as Redis's crc64.c states it.
        assert_eq!(CRC.checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn whole_files_are_valid() {
        assert_eq!(verdict(&rdb(10)), Verdict::Valid { version: 10 });
        assert_eq!(verdict(&rdb(12)), Verdict::Valid { version: 12 });
    }

    #[test]
    fn a_flipped_byte_or_a_cut_is_invalid() {
        let mut flipped = rdb(10);
        flipped[11] ^= 0x01;
        assert!(
            matches!(verdict(&flipped), Verdict::Invalid(why) if why.contains("checksum mismatch"))
        );
        let whole = rdb(10);
        for cut in [whole.len() - 1, whole.len() - 5, 12, 9, 3, 0] {
            let verdict = verdict(&whole[..cut]);
            assert!(
                matches!(&verdict, Verdict::Invalid(_)),
                "cut at {cut}: {verdict:?}"
            );
        }
        assert!(
            matches!(verdict(b"PGDMP\x01\x02"), Verdict::Invalid(why) if why.contains("header"))
        );
        assert!(
            matches!(verdict(b"REDISabcd\xff"), Verdict::Invalid(why) if why.contains("version"))
        );
    }

    #[test]
    fn checksums_off_and_old_versions_are_unchecked() {
        let mut data = rdb(10);
        let at = data.len() - 8;
        data[at..].fill(0);
        assert_eq!(verdict(&data), Verdict::Unchecked { version: 10 });
        let mut old = b"REDIS0003".to_vec();
        old.push(0xFF);
        assert_eq!(verdict(&old), Verdict::Unchecked { version: 3 });
    }
}
