# The link types the decoder understands (tcpdump.org LINKTYPE_ values): the one
# table.  Their names for reports are beside them in linktypes.pyx; decoding is
# decode_frame() in _headers.pxd.  A new link type: a value here, its name in
# linktypes.pyx, its branch in decode_frame(), a test in tests/decode.
cdef enum LinkType:
    LT_NULL = 0
    LT_ETHERNET = 1
    LT_RAW_12 = 12
    LT_RAW_14 = 14
    LT_RAW = 101
    LT_LOOP = 108
    LT_LINUX_SLL = 113
    LT_IPV4 = 228
    LT_IPV6 = 229
    LT_LINUX_SLL2 = 276
