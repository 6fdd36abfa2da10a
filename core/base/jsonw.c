/* jsonw.c - JSON string escaping for core-generated events. Text that is not valid
 * UTF-8 (a file path in a reload error, bytes from a script) gets U+FFFD for each bad
 * byte: a frame that browsers refuse would disconnect its every recipient. */
#include "base/jsonw.h"

#include "base/utf8.h"

void mw_jsonw_strn(struct mw_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    mw_buf_reserve(b, n + 2);
    mw_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': mw_buf_append(b, "\\\"", 2); break;
        case '\\': mw_buf_append(b, "\\\\", 2); break;
        case '\n': mw_buf_append(b, "\\n", 2); break;
        case '\r': mw_buf_append(b, "\\r", 2); break;
        case '\t': mw_buf_append(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                mw_buf_append(b, e, 6);
            } else if (c >= 0x80) {
                size_t len = mw_utf8_seq(s + i, s + n);
                if (len) {
                    mw_buf_append(b, s + i, len);
                    i += len - 1;
                } else {
                    mw_buf_append(b, "\xef\xbf\xbd", 3); /* U+FFFD */
                }
            } else {
                mw_buf_putc(b, (char)c);
            }
        }
    }
    mw_buf_putc(b, '"');
}

void mw_jsonw_event(struct mw_buf *b, const char *type, const char *room)
{
    mw_buf_puts(b, "{\"type\":");
    mw_jsonw_str(b, type);
    mw_buf_puts(b, ",\"room\":");
    mw_jsonw_str(b, room);
    mw_buf_puts(b, ",\"data\":");
}
