# cython: language_level=3
"""Names of the link types in linktypes.pxd, as reports show them."""

NAMES = {
    LT_NULL: "NULL", LT_ETHERNET: "ETHERNET", LT_RAW_12: "RAW", LT_RAW_14: "RAW", LT_RAW: "RAW",
    LT_LOOP: "LOOP", LT_LINUX_SLL: "LINUX_SLL", LT_IPV4: "IPV4", LT_IPV6: "IPV6", LT_LINUX_SLL2: "LINUX_SLL2",
}


def linktype_name(int linktype) -> str:
    """The name of a link type; ``LINKTYPE_<n>`` for one the decoder does not know."""
    return NAMES.get(linktype, f"LINKTYPE_{linktype}")
