//! The build script's GNU build-id reader (`build/elf.rs`), which checks the
//! libtt_metal.so the `tt-metal` feature links against by reading its ELF
//! notes only.

#[path = "../build/elf.rs"]
mod elf;

use std::path::PathBuf;

const ID: [u8; 20] = [
    0x23, 0xbb, 0x34, 0x6f, 0xe8, 0x44, 0x79, 0x51, 0x97, 0x5a, 0xca, 0x3c, 0x3e, 0xb2, 0x61, 0xb0,
    0x83, 0x72, 0x52, 0x2d,
];

/// A 64-bit little-endian ELF file: a PT_LOAD and a PT_NOTE program header,
/// the note segment holding `notes`, then `padding` bytes.
fn elf_file(notes: &[u8], padding: usize) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // ELFCLASS64
    out[5] = 1; // little-endian
    out[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    out[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
    let notes_at = 64 + 2 * 56;
    for (kind, offset, size) in [(1u32, 0u64, 0u64), (4, notes_at as u64, notes.len() as u64)] {
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&kind.to_le_bytes());
        ph[0x08..0x10].copy_from_slice(&offset.to_le_bytes());
        ph[0x20..0x28].copy_from_slice(&size.to_le_bytes());
        out.extend(ph);
    }
    out.extend(notes);
    out.extend(std::iter::repeat_n(0xAB, padding));
    out
}

fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend((name.len() as u32).to_le_bytes());
    out.extend((desc.len() as u32).to_le_bytes());
    out.extend(kind.to_le_bytes());
    out.extend(name);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend(desc);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tt-memguard-build-elf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn the_gnu_build_id_note_is_found_after_other_notes() {
    let mut notes = note(b"stapsdt\0", 3, &[1, 2, 3]);
    notes.extend(note(b"GNU\0", 1, &[0; 16])); // NT_GNU_ABI_TAG
    notes.extend(note(b"GNU\0", 3, &ID));
    let path = write("with-id.so", &elf_file(&notes, 4096));
    assert_eq!(
        elf::gnu_build_id(&path).unwrap().as_deref(),
        Some("23bb346fe8447951975aca3c3eb261b08372522d")
    );
}

#[test]
fn a_file_without_the_note_has_no_build_id() {
    let path = write("no-id.so", &elf_file(&note(b"GNU\0", 1, &[0; 16]), 0));
    assert_eq!(elf::gnu_build_id(&path).unwrap(), None);
    // A truncated note segment is not read past its end.
    let mut notes = note(b"GNU\0", 3, &ID);
    notes.truncate(20);
    let path = write("truncated.so", &elf_file(&notes, 0));
    assert_eq!(elf::gnu_build_id(&path).unwrap(), None);
}

#[test]
fn a_file_that_is_not_elf64_is_an_error() {
    let path = write("text.so", &[b'x'; 100]);
    let e = elf::gnu_build_id(&path).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("ELF"), "{e}");
    let path = write("short.so", b"\x7fELF");
    assert!(elf::gnu_build_id(&path).is_err());
    assert!(elf::gnu_build_id(&PathBuf::from("/nonexistent/libtt_metal.so")).is_err());
}
