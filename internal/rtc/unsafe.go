package rtc

import "unsafe"

// unsafePointer lets a control message header be written into a byte slice.
func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }
