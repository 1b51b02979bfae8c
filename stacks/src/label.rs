//! The owner label kept in the header at the top of every stack slot, so the
//! overflow handler can name the coroutine without touching the runtime.

use crate::arena::HEADER_SIZE;

const MAGIC: u32 = 0xC0_5A_C4_01;
const NAME_CAP: usize = 44;

/// Who owns a stack, as recorded in its slot header.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Label {
    magic: u32,
    /// True for a segment taken by `grow`.
    pub segment: bool,
    name_len: u8,
    /// The coroutine id (0 if none was recorded).
    pub id: u64,
    name: [u8; NAME_CAP],
}

const _: () = assert!(std::mem::size_of::<Label>() <= HEADER_SIZE);

impl Label {
    /// A label for coroutine `id` named `name` (cut to 44 bytes on a char
    /// boundary).
    pub fn new(id: u64, name: &str, segment: bool) -> Label {
        let mut cut = name.len().min(NAME_CAP);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut bytes = [0u8; NAME_CAP];
        bytes[..cut].copy_from_slice(&name.as_bytes()[..cut]);
        Label {
            magic: MAGIC,
            segment,
            name_len: cut as u8,
            id,
            name: bytes,
        }
    }

    /// The recorded name ("" if none).
    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.name[..self.name_len as usize]).unwrap_or("")
    }

    /// Reads the label of the slot whose top is `slot_top`.
    ///
    /// # Safety
    /// `slot_top - HEADER_SIZE .. slot_top` must be readable memory.
    pub unsafe fn read(slot_top: usize) -> Option<Label> {
        // SAFETY: the caller guarantees the header range is readable; the
        // volatile read copes with the owner writing it concurrently (we only
        // ever act on a consistent magic).
        let label = unsafe { std::ptr::read_volatile((slot_top - HEADER_SIZE) as *const Label) };
        (label.magic == MAGIC && label.name_len as usize <= NAME_CAP).then_some(label)
    }

    /// Writes this label into the header of the slot whose top is `slot_top`.
    ///
    /// # Safety
    /// The caller must own the slot (hold its `Stack`).
    pub unsafe fn write(self, slot_top: usize) {
        // SAFETY: the caller owns the slot; the header is ours to write.
        unsafe { std::ptr::write_volatile((slot_top - HEADER_SIZE) as *mut Label, self) };
    }

    /// Clears the header of the slot whose top is `slot_top`.
    ///
    /// # Safety
    /// As for [`Label::write`].
    pub unsafe fn clear(slot_top: usize) {
        // SAFETY: as for `write`; a zero magic marks "no owner".
        unsafe { std::ptr::write_volatile((slot_top - HEADER_SIZE) as *mut u32, 0) };
    }
}
