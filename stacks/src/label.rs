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

    /// Labels the slot whose top is `slot_top` as coroutine `id` named
    /// `name` (cut to 44 bytes on a char boundary). Writes only what a
    /// reader looks at, the magic last: every spawn pays for this, and an
    /// unnamed coroutine's label is 16 bytes, not the whole 64.
    ///
    /// # Safety
    /// The caller must own the slot (hold its `Stack`).
    pub unsafe fn write(slot_top: usize, id: u64, name: &str, segment: bool) {
        let mut cut = name.len().min(NAME_CAP);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let label = (slot_top - HEADER_SIZE) as *mut Label;
        // SAFETY: the caller owns the slot, so the header is ours to write;
        // the name fits its field (`cut <= NAME_CAP`). Volatile, like
        // `read`, since the overflow handler reads it behind the
        // compiler's back.
        unsafe {
            std::ptr::addr_of_mut!((*label).id).write_volatile(id);
            std::ptr::addr_of_mut!((*label).segment).write_volatile(segment);
            std::ptr::addr_of_mut!((*label).name_len).write_volatile(cut as u8);
            let field = std::ptr::addr_of_mut!((*label).name).cast::<u8>();
            for (i, b) in name.as_bytes()[..cut].iter().enumerate() {
                field.add(i).write_volatile(*b);
            }
            std::ptr::addr_of_mut!((*label).magic).write_volatile(MAGIC);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for a slot's header: `HEADER_SIZE` bytes below `top`.
    #[repr(C, align(64))]
    struct Header([u8; HEADER_SIZE]);

    #[test]
    fn a_new_owner_reads_back_its_own_label_not_the_last_one() {
        let mut h = Header([0; HEADER_SIZE]);
        let top = h.0.as_mut_ptr() as usize + HEADER_SIZE;
        // SAFETY: `h` is ours and `top` is its end.
        unsafe {
            assert!(Label::read(top).is_none(), "zeroed: no owner");
            Label::write(top, 1, "a much longer previous owner", false);
            Label::clear(top);
            assert!(Label::read(top).is_none(), "cleared on release");
            Label::write(top, 2, "b", true);
            let l = Label::read(top).expect("labelled");
            assert_eq!((l.id, l.name(), l.segment), (2, "b", true));
            Label::write(top, 3, "", false);
            let l = Label::read(top).expect("labelled");
            assert_eq!((l.id, l.name(), l.segment), (3, "", false));
        }
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary() {
        let mut h = Header([0; HEADER_SIZE]);
        let top = h.0.as_mut_ptr() as usize + HEADER_SIZE;
        // 43 ASCII bytes, then a 3-byte char that would end at byte 46.
        let name = format!("{}€tail", "x".repeat(43));
        // SAFETY: as above.
        let l = unsafe {
            Label::write(top, 4, &name, false);
            Label::read(top).expect("labelled")
        };
        assert_eq!(l.name(), "x".repeat(43));
    }
}
