// There is no `NO_SUCH_EVENT` event.
use qemu_qapi::events::Event;
fn main() {
    let e: Event = qemu_qapi::events::Event::Stop;
    match e {
        Event::Stop => {}
        Event::NoSuchEvent(_) => {}
        _ => {}
    }
}
