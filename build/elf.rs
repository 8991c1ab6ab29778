//! The GNU build-id of an ELF file, read from its `PT_NOTE` segments: the
//! ELF header, the program headers and the notes, a few hundred bytes of a
//! library of any size. 64-bit little-endian ELF only (x86-64, the only
//! target the pinned declarations support).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

const PT_NOTE: u32 = 4;
const NT_GNU_BUILD_ID: u32 = 3;

/// The build-id as lowercase hex; `Ok(None)` when the file has none.
///
/// # Errors
///
/// The file cannot be read, or is not a 64-bit little-endian ELF file.
pub fn gnu_build_id(path: &Path) -> io::Result<Option<String>> {
    let mut file = File::open(path)?;
    let header = read_at(&mut file, 0, 64)?;
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a 64-bit little-endian ELF file",
        ));
    }
    let phoff = u64_at(&header, 0x20);
    let phentsize = u64::from(u16_at(&header, 0x36));
    let phnum = u64::from(u16_at(&header, 0x38));
    if phentsize < 0x38 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad ELF program header size",
        ));
    }
    for i in 0..phnum {
        let ph = read_at(&mut file, phoff + i * phentsize, 0x38)?;
        if u32_at(&ph, 0) != PT_NOTE {
            continue;
        }
        let (offset, size) = (u64_at(&ph, 0x08), u64_at(&ph, 0x20));
        let notes = read_at(
            &mut file,
            offset,
            usize::try_from(size.min(1 << 16)).unwrap_or(0),
        )?;
        if let Some(id) = find_build_id(&notes) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The descriptor of the `NT_GNU_BUILD_ID` note named "GNU" in a note
/// segment, as hex.
fn find_build_id(notes: &[u8]) -> Option<String> {
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut at = 0;
    while at + 12 <= notes.len() {
        let (namesz, descsz) = (u32_at(notes, at) as usize, u32_at(notes, at + 4) as usize);
        let kind = u32_at(notes, at + 8);
        let name = at + 12;
        let desc = name.checked_add(align4(namesz)?)?;
        let end = desc.checked_add(descsz)?;
        if end > notes.len() {
            return None;
        }
        if kind == NT_GNU_BUILD_ID && notes[name..name + namesz] == *b"GNU\0" {
            return Some(
                notes[desc..end]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            );
        }
        at = desc.checked_add(align4(descsz)?)?;
    }
    None
}

fn read_at(file: &mut File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}
