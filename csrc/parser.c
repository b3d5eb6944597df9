/* parser.c - HTTP/1.x response parsing as pure functions over byte buffers.
 *
 * Implements parser.h. The behaviour follows Go's net/http client:
 *   - status line: ReadResponse and ParseHTTPVersion (response.go, request.go);
 *   - header fields: textproto's readMIMEHeader and readContinuedLineSlice;
 *   - framing: readTransfer, parseTransferEncoding, fixLength, shouldClose and
 *     fixTrailer (transfer.go);
 *   - chunked coding: internal/chunked.go, with the line limit that Go's 4 KiB
 *     connection read buffer imposes.
 * Error texts are Go's, byte for byte, because callers can observe them.
 *
 * No allocation, no I/O, no mutable global state. The only static data is the
 * read-only table of non-printable code points used by ft_quote.
 */
#include "parser.h"

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Error messages                                                            */
/* ------------------------------------------------------------------------ */

/* A bounded, always NUL-terminated writer over the caller's err buffer.
 * Raw text is truncated to fit; quoted text is written escape by escape and
 * stops at the first escape that does not fit. */
typedef struct {
    char *p;
    size_t cap;
    size_t len;
    int full;
} msgbuf;

static void mb_init(msgbuf *m, char *p, size_t cap)
{
    m->p = p;
    m->cap = cap;
    m->len = 0;
    m->full = (cap == 0);
    if (cap)
        p[0] = '\0';
}

static void mb_raw(msgbuf *m, const char *s, size_t n)
{
    if (m->full)
        return;
    size_t room = m->cap - 1 - m->len;
    if (n > room) {
        n = room;
        m->full = 1;
    }
    memcpy(m->p + m->len, s, n);
    m->len += n;
    m->p[m->len] = '\0';
}

static void mb_str(msgbuf *m, const char *s) { mb_raw(m, s, strlen(s)); }

/* All or nothing: used for one escape sequence or one encoded rune. */
static void mb_tok(msgbuf *m, const char *s, size_t n)
{
    if (m->full)
        return;
    if (n > m->cap - 1 - m->len) {
        m->full = 1;
        return;
    }
    memcpy(m->p + m->len, s, n);
    m->len += n;
    m->p[m->len] = '\0';
}

/* Code points from U+0100 up that Go's strconv.IsPrint rejects: the Unicode
 * 15.0 general categories Cc, Cf, Cs, Co, Cn (unassigned), Zs, Zl and Zp,
 * as sorted inclusive ranges (Go 1.21 and later use Unicode 15.0). */
static const uint32_t nonprint_ranges[][2] = {
    {0x378,0x379}, {0x380,0x383}, {0x38b,0x38b}, {0x38d,0x38d}, {0x3a2,0x3a2}, {0x530,0x530},
    {0x557,0x558}, {0x58b,0x58c}, {0x590,0x590}, {0x5c8,0x5cf}, {0x5eb,0x5ee}, {0x5f5,0x605},
    {0x61c,0x61c}, {0x6dd,0x6dd}, {0x70e,0x70f}, {0x74b,0x74c}, {0x7b2,0x7bf}, {0x7fb,0x7fc},
    {0x82e,0x82f}, {0x83f,0x83f}, {0x85c,0x85d}, {0x85f,0x85f}, {0x86b,0x86f}, {0x88f,0x897},
    {0x8e2,0x8e2}, {0x984,0x984}, {0x98d,0x98e}, {0x991,0x992}, {0x9a9,0x9a9}, {0x9b1,0x9b1},
    {0x9b3,0x9b5}, {0x9ba,0x9bb}, {0x9c5,0x9c6}, {0x9c9,0x9ca}, {0x9cf,0x9d6}, {0x9d8,0x9db},
    {0x9de,0x9de}, {0x9e4,0x9e5}, {0x9ff,0xa00}, {0xa04,0xa04}, {0xa0b,0xa0e}, {0xa11,0xa12},
    {0xa29,0xa29}, {0xa31,0xa31}, {0xa34,0xa34}, {0xa37,0xa37}, {0xa3a,0xa3b}, {0xa3d,0xa3d},
    {0xa43,0xa46}, {0xa49,0xa4a}, {0xa4e,0xa50}, {0xa52,0xa58}, {0xa5d,0xa5d}, {0xa5f,0xa65},
    {0xa77,0xa80}, {0xa84,0xa84}, {0xa8e,0xa8e}, {0xa92,0xa92}, {0xaa9,0xaa9}, {0xab1,0xab1},
    {0xab4,0xab4}, {0xaba,0xabb}, {0xac6,0xac6}, {0xaca,0xaca}, {0xace,0xacf}, {0xad1,0xadf},
    {0xae4,0xae5}, {0xaf2,0xaf8}, {0xb00,0xb00}, {0xb04,0xb04}, {0xb0d,0xb0e}, {0xb11,0xb12},
    {0xb29,0xb29}, {0xb31,0xb31}, {0xb34,0xb34}, {0xb3a,0xb3b}, {0xb45,0xb46}, {0xb49,0xb4a},
    {0xb4e,0xb54}, {0xb58,0xb5b}, {0xb5e,0xb5e}, {0xb64,0xb65}, {0xb78,0xb81}, {0xb84,0xb84},
    {0xb8b,0xb8d}, {0xb91,0xb91}, {0xb96,0xb98}, {0xb9b,0xb9b}, {0xb9d,0xb9d}, {0xba0,0xba2},
    {0xba5,0xba7}, {0xbab,0xbad}, {0xbba,0xbbd}, {0xbc3,0xbc5}, {0xbc9,0xbc9}, {0xbce,0xbcf},
    {0xbd1,0xbd6}, {0xbd8,0xbe5}, {0xbfb,0xbff}, {0xc0d,0xc0d}, {0xc11,0xc11}, {0xc29,0xc29},
    {0xc3a,0xc3b}, {0xc45,0xc45}, {0xc49,0xc49}, {0xc4e,0xc54}, {0xc57,0xc57}, {0xc5b,0xc5c},
    {0xc5e,0xc5f}, {0xc64,0xc65}, {0xc70,0xc76}, {0xc8d,0xc8d}, {0xc91,0xc91}, {0xca9,0xca9},
    {0xcb4,0xcb4}, {0xcba,0xcbb}, {0xcc5,0xcc5}, {0xcc9,0xcc9}, {0xcce,0xcd4}, {0xcd7,0xcdc},
    {0xcdf,0xcdf}, {0xce4,0xce5}, {0xcf0,0xcf0}, {0xcf4,0xcff}, {0xd0d,0xd0d}, {0xd11,0xd11},
    {0xd45,0xd45}, {0xd49,0xd49}, {0xd50,0xd53}, {0xd64,0xd65}, {0xd80,0xd80}, {0xd84,0xd84},
    {0xd97,0xd99}, {0xdb2,0xdb2}, {0xdbc,0xdbc}, {0xdbe,0xdbf}, {0xdc7,0xdc9}, {0xdcb,0xdce},
    {0xdd5,0xdd5}, {0xdd7,0xdd7}, {0xde0,0xde5}, {0xdf0,0xdf1}, {0xdf5,0xe00}, {0xe3b,0xe3e},
    {0xe5c,0xe80}, {0xe83,0xe83}, {0xe85,0xe85}, {0xe8b,0xe8b}, {0xea4,0xea4}, {0xea6,0xea6},
    {0xebe,0xebf}, {0xec5,0xec5}, {0xec7,0xec7}, {0xecf,0xecf}, {0xeda,0xedb}, {0xee0,0xeff},
    {0xf48,0xf48}, {0xf6d,0xf70}, {0xf98,0xf98}, {0xfbd,0xfbd}, {0xfcd,0xfcd}, {0xfdb,0xfff},
    {0x10c6,0x10c6}, {0x10c8,0x10cc}, {0x10ce,0x10cf}, {0x1249,0x1249}, {0x124e,0x124f},
    {0x1257,0x1257}, {0x1259,0x1259}, {0x125e,0x125f}, {0x1289,0x1289}, {0x128e,0x128f},
    {0x12b1,0x12b1}, {0x12b6,0x12b7}, {0x12bf,0x12bf}, {0x12c1,0x12c1}, {0x12c6,0x12c7},
    {0x12d7,0x12d7}, {0x1311,0x1311}, {0x1316,0x1317}, {0x135b,0x135c}, {0x137d,0x137f},
    {0x139a,0x139f}, {0x13f6,0x13f7}, {0x13fe,0x13ff}, {0x1680,0x1680}, {0x169d,0x169f},
    {0x16f9,0x16ff}, {0x1716,0x171e}, {0x1737,0x173f}, {0x1754,0x175f}, {0x176d,0x176d},
    {0x1771,0x1771}, {0x1774,0x177f}, {0x17de,0x17df}, {0x17ea,0x17ef}, {0x17fa,0x17ff},
    {0x180e,0x180e}, {0x181a,0x181f}, {0x1879,0x187f}, {0x18ab,0x18af}, {0x18f6,0x18ff},
    {0x191f,0x191f}, {0x192c,0x192f}, {0x193c,0x193f}, {0x1941,0x1943}, {0x196e,0x196f},
    {0x1975,0x197f}, {0x19ac,0x19af}, {0x19ca,0x19cf}, {0x19db,0x19dd}, {0x1a1c,0x1a1d},
    {0x1a5f,0x1a5f}, {0x1a7d,0x1a7e}, {0x1a8a,0x1a8f}, {0x1a9a,0x1a9f}, {0x1aae,0x1aaf},
    {0x1acf,0x1aff}, {0x1b4d,0x1b4f}, {0x1b7f,0x1b7f}, {0x1bf4,0x1bfb}, {0x1c38,0x1c3a},
    {0x1c4a,0x1c4c}, {0x1c89,0x1c8f}, {0x1cbb,0x1cbc}, {0x1cc8,0x1ccf}, {0x1cfb,0x1cff},
    {0x1f16,0x1f17}, {0x1f1e,0x1f1f}, {0x1f46,0x1f47}, {0x1f4e,0x1f4f}, {0x1f58,0x1f58},
    {0x1f5a,0x1f5a}, {0x1f5c,0x1f5c}, {0x1f5e,0x1f5e}, {0x1f7e,0x1f7f}, {0x1fb5,0x1fb5},
    {0x1fc5,0x1fc5}, {0x1fd4,0x1fd5}, {0x1fdc,0x1fdc}, {0x1ff0,0x1ff1}, {0x1ff5,0x1ff5},
    {0x1fff,0x200f}, {0x2028,0x202f}, {0x205f,0x206f}, {0x2072,0x2073}, {0x208f,0x208f},
    {0x209d,0x209f}, {0x20c1,0x20cf}, {0x20f1,0x20ff}, {0x218c,0x218f}, {0x2427,0x243f},
    {0x244b,0x245f}, {0x2b74,0x2b75}, {0x2b96,0x2b96}, {0x2cf4,0x2cf8}, {0x2d26,0x2d26},
    {0x2d28,0x2d2c}, {0x2d2e,0x2d2f}, {0x2d68,0x2d6e}, {0x2d71,0x2d7e}, {0x2d97,0x2d9f},
    {0x2da7,0x2da7}, {0x2daf,0x2daf}, {0x2db7,0x2db7}, {0x2dbf,0x2dbf}, {0x2dc7,0x2dc7},
    {0x2dcf,0x2dcf}, {0x2dd7,0x2dd7}, {0x2ddf,0x2ddf}, {0x2e5e,0x2e7f}, {0x2e9a,0x2e9a},
    {0x2ef4,0x2eff}, {0x2fd6,0x2fef}, {0x2ffc,0x3000}, {0x3040,0x3040}, {0x3097,0x3098},
    {0x3100,0x3104}, {0x3130,0x3130}, {0x318f,0x318f}, {0x31e4,0x31ef}, {0x321f,0x321f},
    {0xa48d,0xa48f}, {0xa4c7,0xa4cf}, {0xa62c,0xa63f}, {0xa6f8,0xa6ff}, {0xa7cb,0xa7cf},
    {0xa7d2,0xa7d2}, {0xa7d4,0xa7d4}, {0xa7da,0xa7f1}, {0xa82d,0xa82f}, {0xa83a,0xa83f},
    {0xa878,0xa87f}, {0xa8c6,0xa8cd}, {0xa8da,0xa8df}, {0xa954,0xa95e}, {0xa97d,0xa97f},
    {0xa9ce,0xa9ce}, {0xa9da,0xa9dd}, {0xa9ff,0xa9ff}, {0xaa37,0xaa3f}, {0xaa4e,0xaa4f},
    {0xaa5a,0xaa5b}, {0xaac3,0xaada}, {0xaaf7,0xab00}, {0xab07,0xab08}, {0xab0f,0xab10},
    {0xab17,0xab1f}, {0xab27,0xab27}, {0xab2f,0xab2f}, {0xab6c,0xab6f}, {0xabee,0xabef},
    {0xabfa,0xabff}, {0xd7a4,0xd7af}, {0xd7c7,0xd7ca}, {0xd7fc,0xf8ff}, {0xfa6e,0xfa6f},
    {0xfada,0xfaff}, {0xfb07,0xfb12}, {0xfb18,0xfb1c}, {0xfb37,0xfb37}, {0xfb3d,0xfb3d},
    {0xfb3f,0xfb3f}, {0xfb42,0xfb42}, {0xfb45,0xfb45}, {0xfbc3,0xfbd2}, {0xfd90,0xfd91},
    {0xfdc8,0xfdce}, {0xfdd0,0xfdef}, {0xfe1a,0xfe1f}, {0xfe53,0xfe53}, {0xfe67,0xfe67},
    {0xfe6c,0xfe6f}, {0xfe75,0xfe75}, {0xfefd,0xff00}, {0xffbf,0xffc1}, {0xffc8,0xffc9},
    {0xffd0,0xffd1}, {0xffd8,0xffd9}, {0xffdd,0xffdf}, {0xffe7,0xffe7}, {0xffef,0xfffb},
    {0xfffe,0xffff}, {0x1000c,0x1000c}, {0x10027,0x10027}, {0x1003b,0x1003b}, {0x1003e,0x1003e},
    {0x1004e,0x1004f}, {0x1005e,0x1007f}, {0x100fb,0x100ff}, {0x10103,0x10106}, {0x10134,0x10136},
    {0x1018f,0x1018f}, {0x1019d,0x1019f}, {0x101a1,0x101cf}, {0x101fe,0x1027f}, {0x1029d,0x1029f},
    {0x102d1,0x102df}, {0x102fc,0x102ff}, {0x10324,0x1032c}, {0x1034b,0x1034f}, {0x1037b,0x1037f},
    {0x1039e,0x1039e}, {0x103c4,0x103c7}, {0x103d6,0x103ff}, {0x1049e,0x1049f}, {0x104aa,0x104af},
    {0x104d4,0x104d7}, {0x104fc,0x104ff}, {0x10528,0x1052f}, {0x10564,0x1056e}, {0x1057b,0x1057b},
    {0x1058b,0x1058b}, {0x10593,0x10593}, {0x10596,0x10596}, {0x105a2,0x105a2}, {0x105b2,0x105b2},
    {0x105ba,0x105ba}, {0x105bd,0x105ff}, {0x10737,0x1073f}, {0x10756,0x1075f}, {0x10768,0x1077f},
    {0x10786,0x10786}, {0x107b1,0x107b1}, {0x107bb,0x107ff}, {0x10806,0x10807}, {0x10809,0x10809},
    {0x10836,0x10836}, {0x10839,0x1083b}, {0x1083d,0x1083e}, {0x10856,0x10856}, {0x1089f,0x108a6},
    {0x108b0,0x108df}, {0x108f3,0x108f3}, {0x108f6,0x108fa}, {0x1091c,0x1091e}, {0x1093a,0x1093e},
    {0x10940,0x1097f}, {0x109b8,0x109bb}, {0x109d0,0x109d1}, {0x10a04,0x10a04}, {0x10a07,0x10a0b},
    {0x10a14,0x10a14}, {0x10a18,0x10a18}, {0x10a36,0x10a37}, {0x10a3b,0x10a3e}, {0x10a49,0x10a4f},
    {0x10a59,0x10a5f}, {0x10aa0,0x10abf}, {0x10ae7,0x10aea}, {0x10af7,0x10aff}, {0x10b36,0x10b38},
    {0x10b56,0x10b57}, {0x10b73,0x10b77}, {0x10b92,0x10b98}, {0x10b9d,0x10ba8}, {0x10bb0,0x10bff},
    {0x10c49,0x10c7f}, {0x10cb3,0x10cbf}, {0x10cf3,0x10cf9}, {0x10d28,0x10d2f}, {0x10d3a,0x10e5f},
    {0x10e7f,0x10e7f}, {0x10eaa,0x10eaa}, {0x10eae,0x10eaf}, {0x10eb2,0x10efc}, {0x10f28,0x10f2f},
    {0x10f5a,0x10f6f}, {0x10f8a,0x10faf}, {0x10fcc,0x10fdf}, {0x10ff7,0x10fff}, {0x1104e,0x11051},
    {0x11076,0x1107e}, {0x110bd,0x110bd}, {0x110c3,0x110cf}, {0x110e9,0x110ef}, {0x110fa,0x110ff},
    {0x11135,0x11135}, {0x11148,0x1114f}, {0x11177,0x1117f}, {0x111e0,0x111e0}, {0x111f5,0x111ff},
    {0x11212,0x11212}, {0x11242,0x1127f}, {0x11287,0x11287}, {0x11289,0x11289}, {0x1128e,0x1128e},
    {0x1129e,0x1129e}, {0x112aa,0x112af}, {0x112eb,0x112ef}, {0x112fa,0x112ff}, {0x11304,0x11304},
    {0x1130d,0x1130e}, {0x11311,0x11312}, {0x11329,0x11329}, {0x11331,0x11331}, {0x11334,0x11334},
    {0x1133a,0x1133a}, {0x11345,0x11346}, {0x11349,0x1134a}, {0x1134e,0x1134f}, {0x11351,0x11356},
    {0x11358,0x1135c}, {0x11364,0x11365}, {0x1136d,0x1136f}, {0x11375,0x113ff}, {0x1145c,0x1145c},
    {0x11462,0x1147f}, {0x114c8,0x114cf}, {0x114da,0x1157f}, {0x115b6,0x115b7}, {0x115de,0x115ff},
    {0x11645,0x1164f}, {0x1165a,0x1165f}, {0x1166d,0x1167f}, {0x116ba,0x116bf}, {0x116ca,0x116ff},
    {0x1171b,0x1171c}, {0x1172c,0x1172f}, {0x11747,0x117ff}, {0x1183c,0x1189f}, {0x118f3,0x118fe},
    {0x11907,0x11908}, {0x1190a,0x1190b}, {0x11914,0x11914}, {0x11917,0x11917}, {0x11936,0x11936},
    {0x11939,0x1193a}, {0x11947,0x1194f}, {0x1195a,0x1199f}, {0x119a8,0x119a9}, {0x119d8,0x119d9},
    {0x119e5,0x119ff}, {0x11a48,0x11a4f}, {0x11aa3,0x11aaf}, {0x11af9,0x11aff}, {0x11b0a,0x11bff},
    {0x11c09,0x11c09}, {0x11c37,0x11c37}, {0x11c46,0x11c4f}, {0x11c6d,0x11c6f}, {0x11c90,0x11c91},
    {0x11ca8,0x11ca8}, {0x11cb7,0x11cff}, {0x11d07,0x11d07}, {0x11d0a,0x11d0a}, {0x11d37,0x11d39},
    {0x11d3b,0x11d3b}, {0x11d3e,0x11d3e}, {0x11d48,0x11d4f}, {0x11d5a,0x11d5f}, {0x11d66,0x11d66},
    {0x11d69,0x11d69}, {0x11d8f,0x11d8f}, {0x11d92,0x11d92}, {0x11d99,0x11d9f}, {0x11daa,0x11edf},
    {0x11ef9,0x11eff}, {0x11f11,0x11f11}, {0x11f3b,0x11f3d}, {0x11f5a,0x11faf}, {0x11fb1,0x11fbf},
    {0x11ff2,0x11ffe}, {0x1239a,0x123ff}, {0x1246f,0x1246f}, {0x12475,0x1247f}, {0x12544,0x12f8f},
    {0x12ff3,0x12fff}, {0x13430,0x1343f}, {0x13456,0x143ff}, {0x14647,0x167ff}, {0x16a39,0x16a3f},
    {0x16a5f,0x16a5f}, {0x16a6a,0x16a6d}, {0x16abf,0x16abf}, {0x16aca,0x16acf}, {0x16aee,0x16aef},
    {0x16af6,0x16aff}, {0x16b46,0x16b4f}, {0x16b5a,0x16b5a}, {0x16b62,0x16b62}, {0x16b78,0x16b7c},
    {0x16b90,0x16e3f}, {0x16e9b,0x16eff}, {0x16f4b,0x16f4e}, {0x16f88,0x16f8e}, {0x16fa0,0x16fdf},
    {0x16fe5,0x16fef}, {0x16ff2,0x16fff}, {0x187f8,0x187ff}, {0x18cd6,0x18cff}, {0x18d09,0x1afef},
    {0x1aff4,0x1aff4}, {0x1affc,0x1affc}, {0x1afff,0x1afff}, {0x1b123,0x1b131}, {0x1b133,0x1b14f},
    {0x1b153,0x1b154}, {0x1b156,0x1b163}, {0x1b168,0x1b16f}, {0x1b2fc,0x1bbff}, {0x1bc6b,0x1bc6f},
    {0x1bc7d,0x1bc7f}, {0x1bc89,0x1bc8f}, {0x1bc9a,0x1bc9b}, {0x1bca0,0x1ceff}, {0x1cf2e,0x1cf2f},
    {0x1cf47,0x1cf4f}, {0x1cfc4,0x1cfff}, {0x1d0f6,0x1d0ff}, {0x1d127,0x1d128}, {0x1d173,0x1d17a},
    {0x1d1eb,0x1d1ff}, {0x1d246,0x1d2bf}, {0x1d2d4,0x1d2df}, {0x1d2f4,0x1d2ff}, {0x1d357,0x1d35f},
    {0x1d379,0x1d3ff}, {0x1d455,0x1d455}, {0x1d49d,0x1d49d}, {0x1d4a0,0x1d4a1}, {0x1d4a3,0x1d4a4},
    {0x1d4a7,0x1d4a8}, {0x1d4ad,0x1d4ad}, {0x1d4ba,0x1d4ba}, {0x1d4bc,0x1d4bc}, {0x1d4c4,0x1d4c4},
    {0x1d506,0x1d506}, {0x1d50b,0x1d50c}, {0x1d515,0x1d515}, {0x1d51d,0x1d51d}, {0x1d53a,0x1d53a},
    {0x1d53f,0x1d53f}, {0x1d545,0x1d545}, {0x1d547,0x1d549}, {0x1d551,0x1d551}, {0x1d6a6,0x1d6a7},
    {0x1d7cc,0x1d7cd}, {0x1da8c,0x1da9a}, {0x1daa0,0x1daa0}, {0x1dab0,0x1deff}, {0x1df1f,0x1df24},
    {0x1df2b,0x1dfff}, {0x1e007,0x1e007}, {0x1e019,0x1e01a}, {0x1e022,0x1e022}, {0x1e025,0x1e025},
    {0x1e02b,0x1e02f}, {0x1e06e,0x1e08e}, {0x1e090,0x1e0ff}, {0x1e12d,0x1e12f}, {0x1e13e,0x1e13f},
    {0x1e14a,0x1e14d}, {0x1e150,0x1e28f}, {0x1e2af,0x1e2bf}, {0x1e2fa,0x1e2fe}, {0x1e300,0x1e4cf},
    {0x1e4fa,0x1e7df}, {0x1e7e7,0x1e7e7}, {0x1e7ec,0x1e7ec}, {0x1e7ef,0x1e7ef}, {0x1e7ff,0x1e7ff},
    {0x1e8c5,0x1e8c6}, {0x1e8d7,0x1e8ff}, {0x1e94c,0x1e94f}, {0x1e95a,0x1e95d}, {0x1e960,0x1ec70},
    {0x1ecb5,0x1ed00}, {0x1ed3e,0x1edff}, {0x1ee04,0x1ee04}, {0x1ee20,0x1ee20}, {0x1ee23,0x1ee23},
    {0x1ee25,0x1ee26}, {0x1ee28,0x1ee28}, {0x1ee33,0x1ee33}, {0x1ee38,0x1ee38}, {0x1ee3a,0x1ee3a},
    {0x1ee3c,0x1ee41}, {0x1ee43,0x1ee46}, {0x1ee48,0x1ee48}, {0x1ee4a,0x1ee4a}, {0x1ee4c,0x1ee4c},
    {0x1ee50,0x1ee50}, {0x1ee53,0x1ee53}, {0x1ee55,0x1ee56}, {0x1ee58,0x1ee58}, {0x1ee5a,0x1ee5a},
    {0x1ee5c,0x1ee5c}, {0x1ee5e,0x1ee5e}, {0x1ee60,0x1ee60}, {0x1ee63,0x1ee63}, {0x1ee65,0x1ee66},
    {0x1ee6b,0x1ee6b}, {0x1ee73,0x1ee73}, {0x1ee78,0x1ee78}, {0x1ee7d,0x1ee7d}, {0x1ee7f,0x1ee7f},
    {0x1ee8a,0x1ee8a}, {0x1ee9c,0x1eea0}, {0x1eea4,0x1eea4}, {0x1eeaa,0x1eeaa}, {0x1eebc,0x1eeef},
    {0x1eef2,0x1efff}, {0x1f02c,0x1f02f}, {0x1f094,0x1f09f}, {0x1f0af,0x1f0b0}, {0x1f0c0,0x1f0c0},
    {0x1f0d0,0x1f0d0}, {0x1f0f6,0x1f0ff}, {0x1f1ae,0x1f1e5}, {0x1f203,0x1f20f}, {0x1f23c,0x1f23f},
    {0x1f249,0x1f24f}, {0x1f252,0x1f25f}, {0x1f266,0x1f2ff}, {0x1f6d8,0x1f6db}, {0x1f6ed,0x1f6ef},
    {0x1f6fd,0x1f6ff}, {0x1f777,0x1f77a}, {0x1f7da,0x1f7df}, {0x1f7ec,0x1f7ef}, {0x1f7f1,0x1f7ff},
    {0x1f80c,0x1f80f}, {0x1f848,0x1f84f}, {0x1f85a,0x1f85f}, {0x1f888,0x1f88f}, {0x1f8ae,0x1f8af},
    {0x1f8b2,0x1f8ff}, {0x1fa54,0x1fa5f}, {0x1fa6e,0x1fa6f}, {0x1fa7d,0x1fa7f}, {0x1fa89,0x1fa8f},
    {0x1fabe,0x1fabe}, {0x1fac6,0x1facd}, {0x1fadc,0x1fadf}, {0x1fae9,0x1faef}, {0x1faf9,0x1faff},
    {0x1fb93,0x1fb93}, {0x1fbcb,0x1fbef}, {0x1fbfa,0x1ffff}, {0x2a6e0,0x2a6ff}, {0x2b73a,0x2b73f},
    {0x2b81e,0x2b81f}, {0x2cea2,0x2ceaf}, {0x2ebe1,0x2f7ff}, {0x2fa1e,0x2ffff}, {0x3134b,0x3134f},
    {0x323b0,0xe00ff}, {0xe01f0,0x10ffff},
};
#define NONPRINT_COUNT (sizeof nonprint_ranges / sizeof nonprint_ranges[0])

/* Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the
 * ASCII space. */
static int go_isprint(uint32_t r)
{
    if (r < 0x100) {
        if (r >= 0x20 && r <= 0x7e)
            return 1;
        return r >= 0xa1 && r != 0xad;
    }
    size_t lo = 0, hi = NONPRINT_COUNT;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r < nonprint_ranges[mid][0])
            hi = mid;
        else if (r > nonprint_ranges[mid][1])
            lo = mid + 1;
        else
            return 0;
    }
    return 1;
}

/* Decode one UTF-8 sequence as Go's utf8.DecodeRune does (no overlong forms,
 * no surrogates, nothing above U+10FFFF). Returns its width, or 0 when s[0]
 * does not start a valid sequence. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *r)
{
    unsigned c = s[0];
    size_t need;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xbf;

    if (c < 0x80) {
        *r = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        v = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < need + 1)
        return 0;
    for (size_t i = 1; i <= need; i++) {
        unsigned b = s[i];
        unsigned blo = (i == 1) ? lo : 0x80, bhi = (i == 1) ? hi : 0xbf;
        if (b < blo || b > bhi)
            return 0;
        v = (v << 6) | (b & 0x3f);
    }
    *r = v;
    return need + 1;
}

static const char hexdig[] = "0123456789abcdef";

static void mb_hexesc(msgbuf *m, char kind, uint32_t v, int digits)
{
    char t[10];
    t[0] = '\\';
    t[1] = kind;
    for (int i = 0; i < digits; i++)
        t[2 + i] = hexdig[(v >> (4 * (digits - 1 - i))) & 0xf];
    mb_tok(m, t, (size_t)(2 + digits));
}

/* Append s[0..n) quoted like Go's %q verb on a string (strconv.Quote). */
static void mb_quote(msgbuf *m, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    mb_tok(m, "\"", 1);
    while (i < n && !m->full) {
        uint32_t r;
        size_t w = utf8_decode(u + i, n - i, &r);
        if (w == 0) {
            mb_hexesc(m, 'x', u[i], 2);
            i++;
            continue;
        }
        if (r == '"' || r == '\\') {
            char t[2] = {'\\', (char)r};
            mb_tok(m, t, 2);
        } else if (go_isprint(r)) {
            mb_tok(m, s + i, w);
        } else {
            switch (r) {
            case '\a': mb_tok(m, "\\a", 2); break;
            case '\b': mb_tok(m, "\\b", 2); break;
            case '\f': mb_tok(m, "\\f", 2); break;
            case '\n': mb_tok(m, "\\n", 2); break;
            case '\r': mb_tok(m, "\\r", 2); break;
            case '\t': mb_tok(m, "\\t", 2); break;
            case '\v': mb_tok(m, "\\v", 2); break;
            default:
                if (r < ' ' || r == 0x7f)
                    mb_hexesc(m, 'x', r, 2);
                else if (r < 0x10000)
                    mb_hexesc(m, 'u', r, 4);
                else
                    mb_hexesc(m, 'U', r, 8);
            }
        }
        i += w;
    }
    mb_tok(m, "\"", 1);
}

void ft_quote(const char *s, size_t n, char *out, size_t outcap)
{
    msgbuf m;
    mb_init(&m, out, outcap);
    mb_quote(&m, s, n);
}

static int fail(char *err, size_t errcap, const char *msg)
{
    msgbuf m;
    mb_init(&m, err, errcap);
    mb_str(&m, msg);
    return FT_PERR;
}

/* "<prefix><%q of s>" as Go's badStringError formats it. */
static int fail_quoted(char *err, size_t errcap, const char *prefix, const char *s, size_t n)
{
    msgbuf m;
    mb_init(&m, err, errcap);
    mb_str(&m, prefix);
    mb_quote(&m, s, n);
    return FT_PERR;
}

/* "<prefix><raw bytes>" (textproto's ProtocolError texts are not quoted). */
static int fail_raw(char *err, size_t errcap, const char *prefix, const char *s, size_t n)
{
    msgbuf m;
    mb_init(&m, err, errcap);
    mb_str(&m, prefix);
    mb_raw(&m, s, n);
    return FT_PERR;
}

/* ------------------------------------------------------------------------ */
/* Byte classes                                                              */
/* ------------------------------------------------------------------------ */

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

/* textproto.TrimString's notion of space. */
static int is_ascii_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* RFC 7230 tchar: what Go's validHeaderFieldByte accepts. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return 1;
    default:
        return 0;
    }
}

/* Go's validHeaderValueByte: HT, SP, VCHAR and obs-text. */
static int is_value_byte(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static unsigned char ascii_lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

/* Case-insensitive (ASCII) equality of s[0..n) with the NUL-terminated lit. */
static int ieq(const char *s, size_t n, const char *lit)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (lit[i] == '\0' || ascii_lower((unsigned char)s[i]) != ascii_lower((unsigned char)lit[i]))
            return 0;
    }
    return lit[i] == '\0';
}

/* CanonicalMIMEHeaderKey on a name known to hold only token bytes. */
static void canonicalize(char *s, size_t n)
{
    int upper = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 32);
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        s[i] = (char)c;
        upper = (c == '-');
    }
}

/* ------------------------------------------------------------------------ */
/* Head                                                                      */
/* ------------------------------------------------------------------------ */

/* The head ends at its first empty line: a line whose content, before the
 * '\n', is empty or a lone '\r' (so CRLF CRLF, LF LF, CRLF LF and LF CRLF all
 * end it). Only '\n' bytes are examined, found with memchr, and *scan records
 * how far the search got, so feeding a byte at a time stays linear. */
size_t ft_find_head_end(const char *buf, size_t len, size_t *scan)
{
    size_t i = *scan;

    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (nl == NULL)
            break;
        size_t k = (size_t)(nl - buf);
        if (k == 0 || buf[k - 1] == '\n' ||
            (buf[k - 1] == '\r' && (k == 1 || buf[k - 2] == '\n'))) {
            *scan = k + 1;
            return k + 1;
        }
        i = k + 1;
    }
    *scan = len;
    return 0;
}

/* The line starting at p inside [p, end): *ce receives the end of its content
 * (the '\n' and a '\r' just before it excluded, as bufio.ReadLine does); the
 * return value is where the next line starts. A range without '\n' is one
 * line running to end. */
static size_t line_at(const char *buf, size_t p, size_t end, size_t *ce)
{
    const char *nl = memchr(buf + p, '\n', end - p);
    if (nl == NULL) {
        *ce = end;
        return end;
    }
    size_t e = (size_t)(nl - buf);
    *ce = (e > p && buf[e - 1] == '\r') ? e - 1 : e;
    return e + 1;
}

/* ParseHTTPVersion: "HTTP/<digit>.<digit>", case-sensitive. */
static int parse_version(const char *v, size_t n, int *major, int *minor)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.')
        return 0;
    if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
        return 0;
    *major = v[5] - '0';
    *minor = v[7] - '0';
    return 1;
}

/* ReadResponse's status line: proto, one space, any further spaces, a code
 * of exactly three bytes that strconv.Atoi accepts and that is not negative,
 * then an optional space and reason. The code is checked before the version,
 * as Go does. */
static int parse_status_line(const char *l, size_t n, ft_head *h, char *err, size_t errcap)
{
    const char *sp = memchr(l, ' ', n);
    if (sp == NULL)
        return fail_quoted(err, errcap, "malformed HTTP response ", l, n);

    size_t plen = (size_t)(sp - l);
    size_t s = plen + 1;
    while (s < n && l[s] == ' ')
        s++;
    const char *sp2 = memchr(l + s, ' ', n - s);
    size_t ce = sp2 ? (size_t)(sp2 - l) : n;

    if (ce - s != 3)
        return fail_quoted(err, errcap, "malformed HTTP status code ", l + s, ce - s);
    size_t k = s;
    int neg = 0, val = 0;
    if (l[k] == '+' || l[k] == '-') {
        neg = (l[k] == '-');
        k++;
    }
    for (; k < ce; k++) {
        unsigned d = (unsigned)(unsigned char)l[k] - '0';
        if (d > 9)
            return fail_quoted(err, errcap, "malformed HTTP status code ", l + s, 3);
        val = val * 10 + (int)d;
    }
    if (neg && val != 0)
        return fail_quoted(err, errcap, "malformed HTTP status code ", l + s, 3);

    if (!parse_version(l, plen, &h->version_major, &h->version_minor))
        return fail_quoted(err, errcap, "malformed HTTP version ", l, plen);

    h->status = val;
    if (sp2) {
        h->reason_off = (uint32_t)(ce + 1);
        h->reason_len = (uint32_t)(n - ce - 1);
    } else {
        h->reason_off = (uint32_t)n;
        h->reason_len = 0;
    }
    return FT_OK;
}

/* Number of fields (lines not starting with SP/HT) from p to the empty line. */
static size_t count_fields(const char *buf, size_t p, size_t end)
{
    size_t n = 0;
    while (p < end) {
        size_t ce, next = line_at(buf, p, end, &ce);
        if (ce == p)
            break;
        if (!is_ows((unsigned char)buf[p]))
            n++;
        p = next;
    }
    return n;
}

/* readMIMEHeader over buf[p..end), appending to h->headers from h->nheaders.
 *
 * Per field: the first line must hold a colon; it is trimmed of SP/HT on both
 * sides; each continuation line (one starting with SP/HT) adds one space and
 * its trimmed content, compacted in place right after the first line. The
 * name is what precedes the first colon: non-empty, token bytes, and spaces
 * (accepted, but then the name is not canonicalised). Every byte after the
 * colon must be a valid value byte; the value is what remains once leading
 * SP/HT are skipped.
 *
 * Capacity: when h->cap runs out, the rest is only counted and FT_PMORE
 * returned. Before the first continuation line is compacted, the whole block
 * is counted, so a buffer is never compacted and then handed back with
 * FT_PMORE; canonicalisation is idempotent, so the buffer stays parseable. */
static int parse_fields_impl(char *buf, size_t p, size_t end, ft_head *h, char *err, size_t errcap)
{
    size_t n = h->nheaders;
    int cap_checked = 0;

    if (p < end && is_ows((unsigned char)buf[p])) {
        size_t ce;
        line_at(buf, p, end, &ce);
        if (ce - p > 80) /* textproto quotes at most 80 bytes of this line */
            return fail(err, errcap, "message too large");
        return fail_raw(err, errcap, "malformed MIME header initial line: ", buf + p, ce - p);
    }

    while (p < end) {
        size_t ce, next = line_at(buf, p, end, &ce);
        if (ce == p)
            break; /* the empty line */
        if (n >= h->cap) {
            h->nheaders = n + count_fields(buf, p, end);
            return FT_PMORE;
        }
        if (memchr(buf + p, ':', ce - p) == NULL)
            return fail_quoted(err, errcap, "malformed MIME header: missing colon: ", buf + p, ce - p);

        size_t line_start = p;
        size_t ks = p, w = ce;
        while (ks < w && is_ows((unsigned char)buf[ks]))
            ks++;
        while (w > ks && is_ows((unsigned char)buf[w - 1]))
            w--;
        p = next;

        while (p < end && is_ows((unsigned char)buf[p])) {
            if (!cap_checked) {
                size_t need = n + count_fields(buf, line_start, end);
                if (need > h->cap) {
                    h->nheaders = need;
                    return FT_PMORE;
                }
                cap_checked = 1;
            }
            size_t s = p;
            while (s < end && is_ows((unsigned char)buf[s]))
                s++;
            size_t ce2, next2 = line_at(buf, s, end, &ce2);
            while (ce2 > s && is_ows((unsigned char)buf[ce2 - 1]))
                ce2--;
            buf[w++] = ' ';
            memmove(buf + w, buf + s, ce2 - s);
            w += ce2 - s;
            p = next2;
        }

        /* kv is buf[ks..w); its first colon is on the first line. */
        size_t colon = (size_t)((const char *)memchr(buf + ks, ':', w - ks) - buf);
        int bad = (colon == ks), nocanon = 0;
        for (size_t i = ks; !bad && i < colon; i++) {
            unsigned char c = (unsigned char)buf[i];
            if (is_tchar(c))
                continue;
            if (c == ' ')
                nocanon = 1;
            else
                bad = 1;
        }
        if (bad)
            return fail_raw(err, errcap, "malformed MIME header line: ", buf + ks, w - ks);
        if (!nocanon)
            canonicalize(buf + ks, colon - ks);
        for (size_t i = colon + 1; i < w; i++) {
            if (!is_value_byte((unsigned char)buf[i]))
                return fail_raw(err, errcap, "malformed MIME header line: ", buf + ks, w - ks);
        }
        size_t vs = colon + 1;
        while (vs < w && is_ows((unsigned char)buf[vs]))
            vs++;

        ft_header *hd = &h->headers[n++];
        hd->name_off = (uint32_t)ks;
        hd->name_len = (uint32_t)(colon - ks);
        hd->value_off = (uint32_t)vs;
        hd->value_len = (uint32_t)(w - vs);
        hd->flags = 0;
    }
    h->nheaders = n;
    return FT_OK;
}

int ft_parse_head(char *buf, size_t head_len, ft_head *h, char *err, size_t errcap)
{
    size_t ce, next;
    int rc;

    if (errcap)
        err[0] = '\0';
    h->version_major = h->version_minor = 0;
    h->status = 0;
    h->reason_off = h->reason_len = 0;
    h->nheaders = 0;

    next = line_at(buf, 0, head_len, &ce);
    rc = parse_status_line(buf, ce, h, err, errcap);
    if (rc != FT_OK)
        return rc;
    return parse_fields_impl(buf, next, head_len, h, err, errcap);
}

int ft_parse_fields(char *buf, size_t off, size_t end, ft_head *h, char *err, size_t errcap)
{
    if (errcap)
        err[0] = '\0';
    return parse_fields_impl(buf, off, end, h, err, errcap);
}

/* ------------------------------------------------------------------------ */
/* Lookup helpers                                                            */
/* ------------------------------------------------------------------------ */

static int named(const char *buf, const ft_header *hd, const char *name)
{
    return !(hd->flags & FT_HDR_DELETED) && ieq(buf + hd->name_off, hd->name_len, name);
}

int ft_header_eq(const char *buf, const ft_header *hd, const char *name)
{
    return named(buf, hd, name);
}

/* httpguts.headerValueContainsToken: comma-separated elements, trimmed of
 * SP/HT, compared ASCII case-insensitively; an element with a non-ASCII byte
 * never matches. */
static int value_has_token(const char *v, size_t n, const char *token)
{
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && is_ows((unsigned char)v[a]))
            a++;
        while (b > a && is_ows((unsigned char)v[b - 1]))
            b--;
        int ascii = 1;
        for (size_t k = a; k < b; k++)
            if ((unsigned char)v[k] >= 0x80)
                ascii = 0;
        if (ascii && ieq(v + a, b - a, token))
            return 1;
        if (j >= n)
            return 0;
        i = j + 1;
    }
}

int ft_has_token(const char *buf, const ft_head *h, const char *name, const char *token)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const ft_header *hd = &h->headers[i];
        if (named(buf, hd, name) && value_has_token(buf + hd->value_off, hd->value_len, token))
            return 1;
    }
    return 0;
}

static void delete_named(const char *buf, ft_head *h, const char *name)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if (named(buf, &h->headers[i], name))
            h->headers[i].flags |= FT_HDR_DELETED;
}

/* ------------------------------------------------------------------------ */
/* Framing                                                                   */
/* ------------------------------------------------------------------------ */

/* "<prefix>[<%q> <%q> ...]": Go's %q of a []string of the fields `name`. */
static int fail_quoted_list(char *err, size_t errcap, const char *prefix, const char *buf,
                            const ft_head *h, const char *name)
{
    msgbuf m;
    int first = 1;
    mb_init(&m, err, errcap);
    mb_str(&m, prefix);
    mb_tok(&m, "[", 1);
    for (size_t i = 0; i < h->nheaders; i++) {
        const ft_header *hd = &h->headers[i];
        if (!named(buf, hd, name))
            continue;
        if (!first)
            mb_tok(&m, " ", 1);
        mb_quote(&m, buf + hd->value_off, hd->value_len);
        first = 0;
    }
    mb_tok(&m, "]", 1);
    return FT_PERR;
}

static void trim_space(const char *s, size_t *a, size_t *b)
{
    while (*a < *b && is_ascii_space((unsigned char)s[*a]))
        (*a)++;
    while (*b > *a && is_ascii_space((unsigned char)s[*b - 1]))
        (*b)--;
}

/* parseContentLength: strconv.ParseUint(trimmed, 10, 63). */
static int parse_content_length(const char *v, size_t n, int64_t *out, char *err, size_t errcap)
{
    size_t a = 0, b = n;
    uint64_t x = 0;

    trim_space(v, &a, &b);
    if (a == b)
        return fail_quoted(err, errcap, "invalid empty Content-Length ", v + a, 0);
    for (size_t i = a; i < b; i++) {
        unsigned d = (unsigned)(unsigned char)v[i] - '0';
        if (d > 9 || x > (uint64_t)(INT64_MAX - d) / 10)
            return fail_quoted(err, errcap, "bad Content-Length ", v + a, b - a);
        x = x * 10 + d;
    }
    *out = (int64_t)x;
    return FT_OK;
}

static int body_allowed_for_status(int status)
{
    return !((status >= 100 && status <= 199) || status == 204 || status == 304);
}

/* readTransfer for a response, in Go's order: shouldClose, then
 * parseTransferEncoding, then fixLength, then fixTrailer, then the
 * close-delimited rule. The first error wins. */
int ft_framing_for(const char *buf, ft_head *h, int request_is_head, ft_framing *f,
                   char *err, size_t errcap)
{
    int major = h->version_major, minor = h->version_minor, status = h->status;
    int close_conn, chunked = 0;
    size_t i, nte = 0, ncl = 0;
    ft_header *te = NULL, *cl = NULL;
    int64_t n = -1, real;

    if (errcap)
        err[0] = '\0';
    f->kind = FT_BODY_NONE;
    f->content_length = -1;
    f->body_length = 0;
    f->close = 0;

    /* shouldClose(major, minor, header, removeCloseHeader=true) */
    if (major < 1) {
        close_conn = 1;
    } else {
        int has_close = ft_has_token(buf, h, "Connection", "close");
        if (major == 1 && minor == 0) {
            close_conn = has_close || !ft_has_token(buf, h, "Connection", "keep-alive");
        } else {
            if (has_close)
                delete_named(buf, h, "Connection");
            close_conn = has_close;
        }
    }

    /* parseTransferEncoding: the field is always removed; it is honoured only
     * from HTTP/1.1 on (a version of 0.0 counts as 1.1 here, as in Go). */
    for (i = 0; i < h->nheaders; i++) {
        if (named(buf, &h->headers[i], "Transfer-Encoding")) {
            if (nte++ == 0)
                te = &h->headers[i];
        }
    }
    if (nte > 0) {
        int pmaj = major, pmin = minor;
        if (pmaj == 0 && pmin == 0)
            pmaj = pmin = 1;
        if (pmaj > 1 || (pmaj == 1 && pmin >= 1)) {
            if (nte != 1)
                return fail_quoted_list(err, errcap, "too many transfer encodings: ", buf, h,
                                        "Transfer-Encoding");
            if (!ieq(buf + te->value_off, te->value_len, "chunked"))
                return fail_quoted(err, errcap, "unsupported transfer encoding: ",
                                   buf + te->value_off, te->value_len);
            chunked = 1;
        }
        delete_named(buf, h, "Transfer-Encoding");
    }

    /* fixLength: repeated Content-Length fields must agree once trimmed and
     * are merged into the first (holding the trimmed value); the value must
     * parse even when no body is expected. */
    for (i = 0; i < h->nheaders; i++) {
        if (named(buf, &h->headers[i], "Content-Length")) {
            if (ncl++ == 0)
                cl = &h->headers[i];
        }
    }
    if (ncl > 1) {
        size_t a = 0, b = cl->value_len;
        const char *fv = buf + cl->value_off;
        trim_space(fv, &a, &b);
        for (i = 0; i < h->nheaders; i++) {
            ft_header *hd = &h->headers[i];
            if (hd == cl || !named(buf, hd, "Content-Length"))
                continue;
            size_t c = 0, d = hd->value_len;
            trim_space(buf + hd->value_off, &c, &d);
            if (d - c != b - a || memcmp(buf + hd->value_off + c, fv + a, b - a) != 0)
                return fail_quoted_list(err, errcap,
                                        "http: message cannot contain multiple Content-Length headers; got ",
                                        buf, h, "Content-Length");
        }
        for (i = 0; i < h->nheaders; i++)
            if (&h->headers[i] != cl && named(buf, &h->headers[i], "Content-Length"))
                h->headers[i].flags |= FT_HDR_DELETED;
        cl->value_off += (uint32_t)a;
        cl->value_len = (uint32_t)(b - a);
    }
    if (ncl > 0 && parse_content_length(buf + cl->value_off, cl->value_len, &n, err, errcap) != FT_OK)
        return FT_PERR;

    if (request_is_head || !body_allowed_for_status(status)) {
        real = 0;
    } else if (chunked) {
        delete_named(buf, h, "Content-Length");
        real = -1;
    } else if (ncl > 0) {
        real = n;
    } else {
        real = -1;
    }
    f->content_length = request_is_head ? n : real;

    /* fixTrailer: under chunking the Trailer field is removed and the names
     * it declares may not be framing fields. */
    if (chunked) {
        static const char *const forbidden[3] = {"Transfer-Encoding", "Trailer", "Content-Length"};
        for (i = 0; i < h->nheaders; i++) {
            const ft_header *hd = &h->headers[i];
            if (!named(buf, hd, "Trailer"))
                continue;
            const char *v = buf + hd->value_off;
            size_t s = 0, vn = hd->value_len;
            while (s <= vn) {
                size_t e = s;
                while (e < vn && v[e] != ',')
                    e++;
                size_t a = s, b = e;
                trim_space(v, &a, &b);
                for (size_t k = 0; k < 3; k++)
                    if (b > a && ieq(v + a, b - a, forbidden[k]))
                        return fail_quoted(err, errcap, "bad trailer key ", forbidden[k],
                                           strlen(forbidden[k]));
                s = e + 1;
            }
        }
        delete_named(buf, h, "Trailer");
    }

    if (real == -1 && !chunked && body_allowed_for_status(status))
        close_conn = 1;

    if (chunked) {
        if (request_is_head || !body_allowed_for_status(status)) {
            f->kind = FT_BODY_NONE;
        } else {
            f->kind = FT_BODY_CHUNKED;
            f->body_length = -1;
        }
    } else if (real == 0) {
        f->kind = FT_BODY_NONE;
    } else if (real > 0) {
        f->kind = FT_BODY_LENGTH;
        f->body_length = real;
    } else {
        f->kind = FT_BODY_CLOSE;
        f->body_length = -1;
    }
    f->close = close_conn;
    return FT_OK;
}

/* ------------------------------------------------------------------------ */
/* Chunked transfer coding                                                   */
/* ------------------------------------------------------------------------ */

enum {
    CH_SIZE = 0,     /* reading a chunk-size line */
    CH_DATA = 1,     /* inside chunk data (c->left > 0) */
    CH_DATA_END = 2, /* expecting the CRLF after chunk data */
    CH_TRAILER = 3,  /* reading the trailer section */
    CH_DONE = 4,
    CH_FAILED = 5,
};

/* Go reads chunk-size lines through the connection's 4 KiB bufio.Reader: a
 * line whose '\n' is not within 4096 bytes of its start fails. */
#define CH_MAX_LINE 4096
#define CH_MAX_EXCESS (16 * 1024)

/* While a line or the trailer is incomplete, trailer_off and trailer_len hold
 * private resume offsets (relative to the first byte the caller kept); they
 * take their documented meaning on FT_CH_DONE. */

void ft_chunked_init(ft_chunked *c)
{
    memset(c, 0, sizeof *c);
}

static int chunk_fail(ft_chunked *c, char *err, size_t errcap, const char *msg)
{
    c->state = CH_FAILED;
    return fail(err, errcap, msg);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Go computes the overhead guard in int64 with wrap-around; do the same with
 * defined unsigned arithmetic. */
static int64_t as_int64(uint64_t u)
{
    return u > (uint64_t)INT64_MAX ? -(int64_t)(~u) - 1 : (int64_t)u;
}

int ft_chunked_next(ft_chunked *c, const char *buf, size_t len, size_t max_data,
                    size_t *consumed, size_t *data_off, size_t *data_len,
                    char *err, size_t errcap)
{
    size_t pos = 0;

    if (errcap)
        err[0] = '\0';
    *consumed = 0;
    *data_off = 0;
    *data_len = 0;

    for (;;) {
        switch (c->state) {
        case CH_SIZE: {
            const char *line = buf + pos;
            size_t avail = len - pos;
            size_t from = c->trailer_off < avail ? c->trailer_off : avail;
            const char *nl = memchr(line + from, '\n', avail - from);
            if (nl == NULL) {
                if (avail >= CH_MAX_LINE)
                    return chunk_fail(c, err, errcap, "header line too long");
                c->trailer_off = avail;
                *consumed = pos;
                return FT_CH_MORE;
            }
            size_t lf = (size_t)(nl - line);
            if (lf >= CH_MAX_LINE)
                return chunk_fail(c, err, errcap, "header line too long");
            c->trailer_off = 0;

            /* The line must end in CRLF and hold no other CR. */
            const char *cr = memchr(line, '\r', lf + 1);
            if (cr == NULL)
                return chunk_fail(c, err, errcap, "chunked line ends with bare LF");
            if ((size_t)(cr - line) != lf - 1)
                return chunk_fail(c, err, errcap, "invalid CR in chunked line");
            size_t clen = lf - 1;

            c->excess += (int64_t)clen + 2; /* the line, plus the CRLF after the data */
            size_t e = clen;
            while (e > 0 && is_ows((unsigned char)line[e - 1]))
                e--;
            const char *semi = memchr(line, ';', e);
            if (semi)
                e = (size_t)(semi - line);
            if (e == 0)
                return chunk_fail(c, err, errcap, "empty hex number for chunk length");
            uint64_t size = 0;
            for (size_t i = 0; i < e; i++) {
                int d = hexval((unsigned char)line[i]);
                if (d < 0)
                    return chunk_fail(c, err, errcap, "invalid byte in chunk length");
                if (i == 16)
                    return chunk_fail(c, err, errcap, "http chunk length too large");
                size = (size << 4) | (uint64_t)d;
            }
            /* Allow 16 bytes of overhead per chunk plus twice its data. */
            int64_t ex = as_int64((uint64_t)c->excess - 16u - 2u * size);
            c->excess = ex < 0 ? 0 : ex;
            if (c->excess > CH_MAX_EXCESS)
                return chunk_fail(c, err, errcap, "chunked encoding contains too much non-data");

            pos += lf + 1;
            if (size == 0) {
                c->state = CH_TRAILER;
                c->trailer_off = 0;
                c->trailer_len = 0;
            } else {
                c->left = size;
                c->state = CH_DATA;
            }
            break;
        }
        case CH_DATA: {
            size_t avail = len - pos;
            if (avail == 0) {
                *consumed = pos;
                return FT_CH_MORE;
            }
            uint64_t take = c->left;
            if (take > avail)
                take = avail;
            if (max_data != 0 && take > max_data)
                take = max_data;
            *data_off = pos;
            *data_len = (size_t)take;
            c->left -= take;
            if (c->left == 0)
                c->state = CH_DATA_END;
            *consumed = pos + (size_t)take;
            return FT_CH_DATA;
        }
        case CH_DATA_END:
            if (len - pos < 2) {
                *consumed = pos;
                return FT_CH_MORE;
            }
            if (buf[pos] != '\r' || buf[pos + 1] != '\n')
                return chunk_fail(c, err, errcap, "malformed chunked encoding");
            pos += 2;
            c->state = CH_SIZE;
            c->trailer_off = 0;
            break;
        case CH_TRAILER: {
            /* Find the empty line that ends the trailer section. ls is the
             * start of the line being examined, sc how far it was searched. */
            const char *t = buf + pos;
            size_t avail = len - pos;
            size_t ls = c->trailer_off, sc = c->trailer_len;
            if (sc < ls)
                sc = ls;
            for (;;) {
                if (sc >= avail)
                    break;
                if (sc == ls) {
                    size_t blank = 0;
                    if (t[ls] == '\n') {
                        blank = 1;
                    } else if (t[ls] == '\r') {
                        if (ls + 1 >= avail)
                            break;
                        if (t[ls + 1] == '\n')
                            blank = 2;
                    }
                    if (blank) {
                        c->state = CH_DONE;
                        c->trailer_off = pos;
                        c->trailer_len = ls;
                        *consumed = pos + ls + blank;
                        return FT_CH_DONE;
                    }
                }
                const char *nl = memchr(t + sc, '\n', avail - sc);
                if (nl == NULL) {
                    sc = avail;
                    break;
                }
                ls = sc = (size_t)(nl - t) + 1;
            }
            c->trailer_off = ls;
            c->trailer_len = sc;
            *consumed = pos;
            return FT_CH_MORE;
        }
        case CH_DONE:
            c->trailer_off = 0;
            c->trailer_len = 0;
            return FT_CH_DONE;
        default:
            return fail(err, errcap, "chunked decoder used after an error");
        }
    }
}

uint64_t ft_chunked_data_left(const ft_chunked *c)
{
    return c->state == CH_DATA ? c->left : 0;
}

void ft_chunked_took_data(ft_chunked *c, uint64_t n)
{
    if (c->state != CH_DATA)
        return;
    if (n > c->left)
        n = c->left;
    c->left -= n;
    if (c->left == 0)
        c->state = CH_DATA_END;
}

int ft_chunked_in_trailer(const ft_chunked *c)
{
    return c->state == CH_TRAILER;
}
