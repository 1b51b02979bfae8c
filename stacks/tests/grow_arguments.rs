//! `grow` checks its arguments on every call, not only when the stack runs
//! low: a bad segment size must show up in testing, not deep in production.

use corun_stacks::{MIN_STACK_SIZE, grow, remaining_stack};

#[test]
#[should_panic(expected = "segments")]
fn a_segment_smaller_than_the_smallest_stack_is_refused_with_room_to_spare() {
    // Plenty of stack left: `f` would run in place.
    assert!(remaining_stack().unwrap() > 64 * 1024);
    grow(1024, MIN_STACK_SIZE / 2, || ());
}

#[test]
#[should_panic(expected = "segments")]
fn a_segment_over_one_gib_is_refused_with_room_to_spare() {
    assert!(remaining_stack().unwrap() > 64 * 1024);
    grow(1024, (1 << 30) + 1, || ());
}

#[test]
#[should_panic(expected = "red zone")]
fn a_red_zone_as_large_as_the_segment_is_refused_with_room_to_spare() {
    assert!(remaining_stack().unwrap() > 64 * 1024);
    grow(64 * 1024, 64 * 1024, || ());
}

#[test]
fn valid_arguments_run_in_place_when_there_is_room() {
    assert_eq!(grow(8 * 1024, MIN_STACK_SIZE, || 3), 3);
}
