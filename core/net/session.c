/* session.c - client sessions and their windows of recent message ids (session.h). */
#include "net/session.h"

#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "base/util.h"

/* Up to this many ids are looked up in the list; the index map exists only beyond
 * (an 8-slot map costs more than the entries of an idle connection). */
#define LIST_MAX 8

/* A client message id seen recently, and the reply it got. */
struct entry {
    struct entry *next; /* oldest first */
    char *reply;        /* the ack/error frame text, when kept */
    uint64_t ts_ms;
    bool done;
    char key[];         /* "s:<string id>" or "n:<integer id>"; one allocation with it */
};

struct mw_session {
    char *name;          /* "<user>\x1f<sid>" for a named session, NULL for a private one */
    const char *sid;     /* inside name */
    uint32_t refs;       /* connections attached */
    struct mw_map index; /* key -> entry, only beyond LIST_MAX entries */
    struct entry *head, *tail;
    uint32_t n, bytes;   /* entries, kept reply bytes */
    size_t mem;          /* bytes it holds: itself, its entries, keys, replies, index */
    size_t index_mem;    /* the index's share of mem */
    bool detached;       /* on the detached list */
    struct mw_session *dprev, *dnext; /* the detached list, oldest first */
};

static struct mw_map named; /* name -> session */
static struct mw_session *dhead, *dtail;
static uint32_t ndetached;
static size_t dbytes;              /* held by detached sessions */
static size_t dbudget = 64u << 20; /* limits.sessions_memory */
static uint64_t devicted;

/* Bytes an entry holds (with its key), and the accounting of changes in s->mem: the
 * detached total follows. */
#define ENTRY_BYTES(klen) (sizeof(struct entry) + (klen) + 1)

static void mem_add(struct mw_session *s, size_t n)
{
    s->mem += n;
    if (s->detached)
        dbytes += n;
}

static void mem_sub(struct mw_session *s, size_t n)
{
    s->mem -= n;
    if (s->detached)
        dbytes -= n;
}

/* After the index grew or went: its slots count too. */
static void index_account(struct mw_session *s)
{
    size_t now = (size_t)s->index.cap * sizeof(struct mw_map_slot);
    if (now > s->index_mem)
        mem_add(s, now - s->index_mem);
    else
        mem_sub(s, s->index_mem - now);
    s->index_mem = now;
}

void mw_session_set_budget(size_t bytes)
{
    dbudget = bytes;
}

const char *mw_session_id_error(const char *sid, size_t len)
{
    if (len < 1 || len > MW_SESSION_ID_MAX)
        return "session must be 1..64 characters of A-Z a-z 0-9 _ -";
    for (size_t i = 0; i < len; i++) {
        char ch = sid[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return "session must be 1..64 characters of A-Z a-z 0-9 _ -";
    }
    return NULL;
}

static char *name_of(const char *user, const char *sid)
{
    size_t ul = strlen(user), sl = strlen(sid);
    char *name = mw_malloc(ul + 1 + sl + 1);
    memcpy(name, user, ul);
    name[ul] = '\x1f'; /* no user id or session id contains it */
    memcpy(name + ul + 1, sid, sl + 1);
    return name;
}

static void detached_unlink(struct mw_session *s)
{
    s->detached = false;
    dbytes -= s->mem;
    if (s->dprev)
        s->dprev->dnext = s->dnext;
    else
        dhead = s->dnext;
    if (s->dnext)
        s->dnext->dprev = s->dprev;
    else
        dtail = s->dprev;
    s->dprev = s->dnext = NULL;
    ndetached--;
}

static void entry_free(struct mw_session *s, struct entry *e)
{
    size_t rlen = e->reply ? strlen(e->reply) : 0;
    mem_sub(s, ENTRY_BYTES(strlen(e->key)) + (rlen ? rlen + 1 : 0));
    if (e->reply)
        s->bytes -= (uint32_t)rlen;
    free(e->reply);
    free(e);
}

static void session_free(struct mw_session *s)
{
    while (s->head) {
        struct entry *e = s->head;
        s->head = e->next;
        entry_free(s, e);
    }
    mw_map_free(&s->index);
    if (s->name)
        mw_map_del(&named, s->name);
    free(s->name);
    free(s);
}

struct mw_session *mw_session_find(const char *user, const char *sid)
{
    char *name = name_of(user, sid);
    struct mw_session *s = mw_map_get(&named, name);
    free(name);
    return s;
}

struct mw_session *mw_session_attach(const char *user, const char *sid)
{
    struct mw_session *s;
    if (sid && (s = mw_session_find(user, sid))) {
        if (s->refs++ == 0)
            detached_unlink(s);
        return s;
    }
    s = mw_calloc(1, sizeof *s);
    s->refs = 1;
    s->mem = sizeof *s;
    if (sid) {
        s->name = name_of(user, sid);
        s->sid = s->name + strlen(user) + 1;
        s->mem += strlen(s->name) + 1;
        mw_map_put(&named, s->name, s);
    }
    return s;
}

const char *mw_session_sid(const struct mw_session *s)
{
    return s->sid;
}

void mw_session_detach(struct mw_session *s)
{
    if (--s->refs > 0)
        return;
    if (!s->name || !s->n) {
        session_free(s);
        return;
    }
    s->dprev = dtail;
    if (dtail)
        dtail->dnext = s;
    else
        dhead = s;
    dtail = s;
    ndetached++;
    s->detached = true;
    dbytes += s->mem;
    /* Bounded in count and in bytes (limits.sessions_memory): the oldest go first. */
    while (ndetached > MW_SESSIONS_DETACHED_MAX || (dbytes > dbudget && dhead)) {
        struct mw_session *old = dhead;
        detached_unlink(old);
        session_free(old);
        devicted++;
    }
}

/* Takes e (whose predecessor is prev, NULL for the head) out of s and frees it. */
static void entry_remove(struct mw_session *s, struct entry *e, struct entry *prev)
{
    if (prev)
        prev->next = e->next;
    else
        s->head = e->next;
    if (s->tail == e)
        s->tail = prev;
    if (s->index.cap)
        mw_map_del(&s->index, e->key);
    entry_free(s, e);
    s->n--;
    if (!s->n && s->index.cap) {
        mw_map_free(&s->index);
        index_account(s);
    }
}

static struct entry *find(const struct mw_session *s, const char *key)
{
    if (s->index.cap)
        return mw_map_get(&s->index, key);
    for (struct entry *e = s->head; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

/* Ids older than the window: forgotten once more than MW_DEDUP_MIN are kept; the
 * last MW_DEDUP_MIN keep their id but give back their reply. */
static void expire(struct mw_session *s, uint64_t now)
{
    while (s->head && now - s->head->ts_ms > MW_DEDUP_WINDOW_MS && s->n > MW_DEDUP_MIN)
        entry_remove(s, s->head, NULL);
    for (struct entry *e = s->head; e && now - e->ts_ms > MW_DEDUP_WINDOW_MS; e = e->next) {
        if (e->reply) {
            size_t rlen = strlen(e->reply);
            s->bytes -= (uint32_t)rlen;
            mem_sub(s, rlen + 1);
            free(e->reply);
            e->reply = NULL;
        }
    }
}

int mw_session_dedup_begin(struct mw_session *s, const char *key, const char **reply)
{
    uint64_t now = mw_now_ms();
    expire(s, now);
    struct entry *e = find(s, key);
    *reply = NULL;
    if (e) {
        *reply = e->reply;
        return e->done ? MW_DEDUP_DONE : MW_DEDUP_RUNNING;
    }
    size_t klen = strlen(key);
    e = mw_malloc(sizeof *e + klen + 1);
    mem_add(s, ENTRY_BYTES(klen));
    e->next = NULL;
    e->reply = NULL;
    e->done = false;
    e->ts_ms = now;
    memcpy(e->key, key, klen + 1);
    if (s->tail)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    s->n++;
    if (s->index.cap) {
        mw_map_put(&s->index, e->key, e);
    } else if (s->n > LIST_MAX) { /* a busy session: index its ids */
        for (struct entry *x = s->head; x; x = x->next)
            mw_map_put(&s->index, x->key, x);
    }
    index_account(s);
    return MW_DEDUP_NEW;
}

void mw_session_dedup_end(struct mw_session *s, const char *key, const char *reply)
{
    struct entry *e = find(s, key);
    if (!e || e->done)
        return;
    e->done = true;
    if (!reply)
        return;
    size_t len = strlen(reply);
    if (len <= MW_DEDUP_REPLY_MAX && s->bytes + len <= MW_DEDUP_BYTES) {
        e->reply = mw_strdup(reply);
        s->bytes += (uint32_t)len;
        mem_add(s, len + 1);
    }
}

void mw_session_dedup_forget(struct mw_session *s, const char *key)
{
    struct entry *prev = NULL, *e = s->head;
    for (; e && strcmp(e->key, key) != 0; e = e->next)
        prev = e;
    if (e)
        entry_remove(s, e, prev);
}

void mw_session_trim(struct mw_session *s, uint64_t now_ms)
{
    expire(s, now_ms);
}

void mw_session_sweep(uint64_t now_ms)
{
    /* A detached session is kept while a reconnect may resend into its window: until
     * its last id is older than the window (oldest detached first), and while the
     * detached ones fit in limits.sessions_memory (replies to closed connections can
     * add to them). */
    while (dhead && ((dhead->tail && now_ms - dhead->tail->ts_ms > MW_DEDUP_WINDOW_MS) ||
                     dbytes > dbudget)) {
        struct mw_session *s = dhead;
        if (dbytes > dbudget && !(s->tail && now_ms - s->tail->ts_ms > MW_DEDUP_WINDOW_MS))
            devicted++;
        detached_unlink(s);
        session_free(s);
    }
}

void mw_session_free_all(void)
{
    while (dhead) {
        struct mw_session *s = dhead;
        detached_unlink(s);
        session_free(s);
    }
    mw_map_free(&named);
}

uint32_t mw_session_ids(const struct mw_session *s)
{
    return s->n;
}

uint32_t mw_session_reply_bytes(const struct mw_session *s)
{
    return s->bytes;
}

struct mw_session_stats mw_session_stats(void)
{
    return (struct mw_session_stats){ named.len, ndetached, dbytes, devicted };
}
