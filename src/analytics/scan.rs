//! Answers one [`Aggregate`] from the [`Store`]: every filter, dimension, metric, zone,
//! currency and granularity through one scan.
//!
//! The window and its trend buckets and local days are instants; over the sorted body
//! they are row ranges found by binary search, so a row is never bucketed one by one.
//! Each range is summed with the row filters as small lookup tables (shop, province,
//! channel, payment method, creator, product), money in exact minor units per shop
//! currency, converted once per local day with that day's factor. Distinct buyers are
//! counted exactly from the (group, buyer) pairs of the paying orders.

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::money::{round_scaled, Rates};
use super::store::{
    Segment, Store, DELIVERED, DISPUTED, FIRST, LIVE, ON_TIME, PAID, REFUNDED, SLOT,
};
use super::{buckets::local_midnight, Aggregate, GroupRow, Grouping, Measures, OTHER_KEY};
use crate::domain::Dimension;
use crate::error::{AppError, AppResult};

/// One group's sums; money in minor units × 10^-scale of the report currency.
#[derive(Debug, Clone, Default)]
struct Acc {
    orders: i64,
    paid_orders: i64,
    units: i64,
    refund_orders: i64,
    dispute_orders: i64,
    delivered_orders: i64,
    on_time_orders: i64,
    delivery_us: i128,
    gmv: i128,
    refund: i128,
    commission: i128,
}

impl Acc {
    fn add(&mut self, o: &Acc) {
        self.orders += o.orders;
        self.paid_orders += o.paid_orders;
        self.units += o.units;
        self.refund_orders += o.refund_orders;
        self.dispute_orders += o.dispute_orders;
        self.delivered_orders += o.delivered_orders;
        self.on_time_orders += o.on_time_orders;
        self.delivery_us += o.delivery_us;
        self.gmv += o.gmv;
        self.refund += o.refund;
        self.commission += o.commission;
    }

    fn measures(&self, scale: u32, buyers: BuyerCounts) -> Measures {
        let money = |v: i128| round_scaled(v, scale) as f64 / 100.0;
        Measures {
            orders: self.orders,
            paid_orders: self.paid_orders,
            gmv: money(self.gmv),
            units: self.units,
            refund_orders: self.refund_orders,
            refund_amount: money(self.refund),
            dispute_orders: self.dispute_orders,
            delivered_orders: self.delivered_orders,
            on_time_orders: self.on_time_orders,
            delivery_hours: self.delivery_us as f64 / 3.6e9,
            commission: money(self.commission),
            buyers: buyers.distinct,
            repeat_buyers: buyers.repeat,
            new_buyers: buyers.new,
        }
    }
}

/// Raw money of one group and shop currency inside one local day.
#[derive(Debug, Clone, Copy, Default)]
struct DayMoney {
    gmv: i64,
    refund: i64,
    commission: i64,
}

/// What a row is grouped by.
#[derive(Clone, Copy, PartialEq)]
enum Key {
    Bucket,
    Shop,
    Platform,
    Province,
    Region,
    Channel,
    Creator,
    PaymentMethod,
    Status,
    Carrier,
    Product,
    Category,
}

/// Rows a scan selects at a time.
const CHUNK: usize = 1024;

/// Rows below which one thread scans alone (`ANALYTICS_PARALLEL_FROM`; the tests set
/// it low so that their small datasets take the two-thread path too).
static PARALLEL_FROM: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(200_000);

/// Sets the number of rows from which a scan uses two threads.
pub fn set_parallel_from(rows: usize) {
    PARALLEL_FROM.store(rows, std::sync::atomic::Ordering::Relaxed);
}

/// Rows of one bucket and local day.
#[derive(Clone)]
enum Rows {
    Body(usize, usize),
    Tail(Vec<u32>),
}

#[derive(Clone)]
struct Work {
    rows: Rows,
    bucket: u32,
    day: u32,
}

impl Work {
    fn len(&self) -> usize {
        match &self.rows {
            Rows::Body(lo, hi) => hi - lo,
            Rows::Tail(rows) => rows.len(),
        }
    }
}

/// A window cut into ranges of constant bucket and local day.
struct Slice {
    start: i64,
    bucket: u32,
    day: u32,
}

/// The lookup tables and sums of one scan.
#[derive(Clone)]
struct Scan<'a> {
    store: &'a Store,
    shop_ok: Vec<bool>,
    /// Per shop index: the index of its currency among the scan's currencies.
    shop_currency: Vec<usize>,
    currencies: usize,
    province_ok: Option<Vec<bool>>,
    channel_ok: Option<Vec<bool>>,
    payment_ok: Option<Vec<bool>>,
    carrier_ok: Option<Vec<bool>>,
    creator_ok: Option<Vec<bool>>,
    product_ok: Option<Vec<bool>>,
    /// The products `product_ok` selects.
    selected_products: Option<Vec<u32>>,
    on_items: bool,
    key: Key,
    /// Key index → group (with `keep`: kept keys, then "other").
    remap: Option<Vec<u32>>,
    groups: usize,
    accs: Vec<Acc>,
    day_money: Vec<DayMoney>,
    touched: Vec<u32>,
    /// Per (local day, currency): the factor's mantissa at `scale`.
    factors: Vec<i128>,
    scale: u32,
    buyers: Distinct,
    wants: Wants,
    columns: super::Columns,
}

/// The buyer of an entry: the low 30 bits; the top bit marks an order that is its
/// buyer's first paid order in the shop, and in [`Entries`] that tell orders apart the
/// next bit marks the first entry of each order.
const BUYER: u32 = 0x3FFF_FFFF;
const NEW_BIT: u32 = 1 << 31;
const ORDER_FIRST: u32 = 1 << 30;

/// Distinct, repeat (two or more paid orders) and new buyers of a group.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BuyerCounts {
    pub distinct: i64,
    pub repeat: i64,
    pub new: i64,
}

/// How buyers are counted: per bucket with bitsets over buyers (buckets are met in
/// time order, so one set of bitsets is enough, cleared between buckets), per
/// dimension key from (group, buyer) entries.
#[derive(Clone)]
enum Distinct {
    None,
    Bits(BucketBits),
    Groups(GroupMarks),
    Pairs(Entries),
}

/// Bytes of buyer marks per scan worker up to which a breakdown by an order-level key
/// keeps one set of marks per group ([`GroupMarks`]) instead of (group, buyer)
/// entries (8 bytes per paying order, then sorted): at most what those entries take
/// for a few million orders. Measured on 3 million buyers, a year's PROVINCE
/// breakdown with repeat buyers (53 MB of marks) is faster than with entries.
const GROUP_MARKS_BYTES: usize = 64 << 20;

/// Buyer marks of every group of a breakdown by an order-level key (each order is in
/// one group): group-major words, one bit per buyer, or four interleaved bits (seen,
/// seen again, seen new) when repeat or new buyers are asked for. A paying order sets
/// its buyer's bits in its group; counts are popcounts, and the union of groups (the
/// total, "other") combines words, so nothing is sorted and two workers' marks merge
/// word by word.
#[derive(Clone)]
struct GroupMarks {
    words: Vec<u64>,
    per_group: usize,
    wide: bool,
    /// Item-level keys with repeat buyers: one order may mark a group through several
    /// lines and several groups at once, so each group remembers the last order that
    /// marked it, and an extra group (this one) holds the total, marked once per order.
    /// The union of groups would count a buyer whose one order spans two of them as a
    /// repeat buyer; "other" of several groups is then counted again (`Grouped::fold`).
    total: Option<usize>,
    last: Vec<u32>,
}

impl GroupMarks {
    fn words_for(buyers: usize, groups: usize, wants: Wants) -> (usize, bool) {
        let wide = wants.repeat || wants.new;
        let per_group = buyers.div_ceil(if wide { 16 } else { 64 });
        (per_group * groups, wide)
    }

    /// Marks for these groups when they fit [`GROUP_MARKS_BYTES`] and the window has
    /// enough rows to pay for clearing and counting them (entries cost about 8 bytes
    /// written and sorted per paying order; marks are cleared, counted and merged
    /// whole).
    fn fitting(
        buyers: usize,
        groups: usize,
        wants: Wants,
        rows: usize,
        orders_apart: bool,
    ) -> Option<GroupMarks> {
        let all = groups + usize::from(orders_apart);
        let (words, wide) = Self::words_for(buyers, all, wants);
        let bytes = words * 8;
        (bytes <= GROUP_MARKS_BYTES && bytes <= rows.saturating_mul(4)).then(|| GroupMarks {
            words: vec![0; words],
            per_group: words / all.max(1),
            wide,
            total: orders_apart.then_some(groups),
            last: if orders_apart {
                vec![u32::MAX; all]
            } else {
                Vec::new()
            },
        })
    }

    /// One paying order's line (or the order) in group `g`: each order marks a group
    /// and the total once.
    #[inline]
    fn add_order(&mut self, g: u32, entry: u32, order: u32) {
        let Some(total) = self.total else {
            return self.add(g, entry);
        };
        for g in [g as usize, total] {
            if self.last[g] != order {
                self.last[g] = order;
                self.add(g as u32, entry);
            }
        }
    }

    /// One paying order of group `g`; any earlier mark of the buyer in `g` was another
    /// order, so a second mark makes a repeat buyer.
    #[inline]
    fn add(&mut self, g: u32, entry: u32) {
        let b = entry & BUYER;
        let base = g as usize * self.per_group;
        if !self.wide {
            self.words[base + (b >> 6) as usize] |= 1 << (b & 63);
            return;
        }
        let (w, p) = (base + (b >> 4) as usize, (b & 15) * 4);
        let word = self.words[w];
        let again = (word >> p) & 1;
        let new = u64::from(entry & NEW_BIT != 0);
        self.words[w] = word | (1 << p) | (again << (p + 1)) | (new << (p + 2));
    }

    /// Paying orders (or their lines) of a chunk, in row order: `(group, entry, order)`
    /// each. The words are random accesses into megabytes, so each is prefetched a
    /// few entries ahead of its update (the total's word too when it is kept apart).
    fn add_all(&mut self, marked: &[(u32, u32, u32)]) {
        const AHEAD: usize = 12;
        let shift = if self.wide { 4 } else { 6 };
        let per_group = self.per_group;
        let word = |g: usize, e: u32| g * per_group + ((e & BUYER) >> shift) as usize;
        for i in 0..marked.len() {
            if let Some(&(g, e, _)) = marked.get(i + AHEAD) {
                prefetch(&self.words, word(g as usize, e));
                if let Some(total) = self.total {
                    prefetch(&self.words, word(total, e));
                }
            }
            let (g, e, order) = marked[i];
            self.add_order(g, e, order);
        }
    }

    /// The marks of two sets of orders as one: seen in either, repeat in either or
    /// seen in both, new in either.
    #[inline]
    fn combine(wide: bool, a: u64, b: u64) -> u64 {
        if wide {
            a | b | ((a & b & SEEN_BITS) << 1)
        } else {
            a | b
        }
    }

    fn merge(&mut self, later: &GroupMarks) {
        let wide = self.wide;
        for (a, b) in self.words.iter_mut().zip(&later.words) {
            *a = Self::combine(wide, *a, *b);
        }
    }

    fn group(&self, g: usize) -> &[u64] {
        &self.words[g * self.per_group..(g + 1) * self.per_group]
    }

    fn counts_of(wide: bool, words: &[u64]) -> BuyerCounts {
        let mut c = BuyerCounts::default();
        if !wide {
            c.distinct = words.iter().map(|w| i64::from(w.count_ones())).sum();
            return c;
        }
        for w in words {
            c.distinct += i64::from((w & SEEN_BITS).count_ones());
            c.repeat += i64::from(((w >> 1) & SEEN_BITS).count_ones());
            c.new += i64::from(((w >> 2) & SEEN_BITS).count_ones());
        }
        c
    }

    fn counts(&self, g: usize) -> BuyerCounts {
        Self::counts_of(self.wide, self.group(g))
    }

    /// The buyers of all groups.
    fn total(&self, groups: usize) -> BuyerCounts {
        match self.total {
            Some(t) => self.counts(t),
            None => self.union(0..groups),
        }
    }

    /// The buyers of these groups together.
    fn union(&self, groups: impl Iterator<Item = usize>) -> BuyerCounts {
        let mut acc = vec![0u64; self.per_group];
        for g in groups {
            for (a, w) in acc.iter_mut().zip(self.group(g)) {
                *a = Self::combine(self.wide, *a, *w);
            }
        }
        Self::counts_of(self.wide, &acc)
    }
}

/// Asks the processor to bring `words[i]` into its cache.
#[inline]
fn prefetch(words: &[u64], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(w) = words.get(i) {
        // SAFETY: prefetching only hints the cache; the address is a valid element.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (w as *const u64).cast::<i8>(),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (words, i);
}

/// What a breakdown keeps to count the buyers of folded groups again.
enum BuyerSets {
    Lists(Lists),
    Marks(GroupMarks),
}

/// (group, buyer) entries of paying orders, in row order. When one order may meet
/// several groups (product and category keys) and repeat buyers are asked for
/// (`with_orders`), each order enters a group once and its first entry carries
/// [`ORDER_FIRST`]: a group's entries are then distinct orders, the total counts
/// first entries, and "other" reads the entries in row order, an order at a time.
#[derive(Clone, Default)]
struct Entries {
    pairs: Vec<(u32, u32)>,
    with_orders: bool,
    /// The order being pushed (an order's entries are pushed together) and the groups
    /// it has entered.
    order: Option<u32>,
    entered: Vec<u32>,
}

impl Entries {
    #[inline]
    fn push(&mut self, g: u32, entry: u32, order: u32) {
        if !self.with_orders {
            return self.pairs.push((g, entry));
        }
        if self.order != Some(order) {
            self.order = Some(order);
            self.entered.clear();
            self.entered.push(g);
            return self.pairs.push((g, entry | ORDER_FIRST));
        }
        if !self.entered.contains(&g) {
            self.entered.push(g);
            self.pairs.push((g, entry));
        }
    }

    fn extend(&mut self, later: Entries) {
        self.pairs.extend(later.pairs);
    }
}

/// Which buyer counts a question needs beyond distinct buyers.
#[derive(Clone, Copy, Default)]
struct Wants {
    repeat: bool,
    new: bool,
}

/// Marks per buyer in one array: one bit (seen) when only distinct buyers are
/// counted, so that the set stays small enough for the cache; otherwise four
/// interleaved bits (seen, seen in another order, seen new), so that one access reads
/// all of a buyer's marks.
#[derive(Clone)]
struct Marks {
    words: Vec<u64>,
    wide: bool,
}

/// The seen bits of a wide word.
const SEEN_BITS: u64 = 0x1111_1111_1111_1111;

impl Marks {
    fn new(buyers: usize, wants: Wants) -> Marks {
        let wide = wants.repeat || wants.new;
        let per_word = if wide { 16 } else { 64 };
        Marks {
            words: vec![0; buyers.div_ceil(per_word)],
            wide,
        }
    }

    /// The word and the position of the buyer's seen bit (`+1` again, `+2` new).
    #[inline]
    fn locate(&self, b: u32) -> (usize, u32) {
        if self.wide {
            ((b >> 4) as usize, (b & 15) * 4)
        } else {
            ((b >> 6) as usize, b & 63)
        }
    }

    /// Marks one entry; `another`: the buyer was seen before in a different order
    /// (with unknown orders, any second entry is another order). Returns what it adds.
    #[inline]
    fn mark(&mut self, entry: u32, wants: Wants, another: impl FnOnce() -> bool) -> BuyerCounts {
        let (w, p) = self.locate(entry & BUYER);
        let mut word = self.words[w];
        let mut c = BuyerCounts::default();
        if word & (1 << p) == 0 {
            word |= 1 << p;
            c.distinct = 1;
        } else if wants.repeat && word & (2 << p) == 0 && another() {
            word |= 2 << p;
            c.repeat = 1;
        }
        if wants.new && entry & NEW_BIT != 0 && word & (4 << p) == 0 {
            word |= 4 << p;
            c.new = 1;
        }
        self.words[w] = word;
        c
    }

    /// Clears the word of a buyer (and of the buyers sharing it).
    #[inline]
    fn clear(&mut self, b: u32) {
        let (w, _) = self.locate(b & BUYER);
        self.words[w] = 0;
    }

    /// What two sets of one bucket share: buyers in both (counted twice), the repeat
    /// buyers of the union (one side's repeat buyers plus buyers seen on both sides),
    /// the repeat buyers counted by either side, and buyers new on both sides.
    fn overlap(&self, other: &Marks) -> (i64, i64, i64, i64) {
        let (mut both, mut repeat, mut counted, mut new_both) = (0u32, 0u32, 0u32, 0u32);
        for (a, b) in self.words.iter().zip(&other.words) {
            if self.wide {
                let shared = a & b & SEEN_BITS;
                let (ta, tb) = ((a >> 1) & SEEN_BITS, (b >> 1) & SEEN_BITS);
                both += shared.count_ones();
                repeat += (ta | tb | shared).count_ones();
                counted += ta.count_ones() + tb.count_ones();
                new_both += ((a >> 2) & (b >> 2) & SEEN_BITS).count_ones();
            } else {
                both += (a & b).count_ones();
            }
        }
        (
            i64::from(both),
            i64::from(repeat),
            i64::from(counted),
            i64::from(new_both),
        )
    }
}

impl BuyerCounts {
    fn add(&mut self, o: BuyerCounts) {
        self.distinct += o.distinct;
        self.repeat += o.repeat;
        self.new += o.new;
    }
}

/// Counts entries of groups into marks over every buyer.
struct Tally {
    marks: Marks,
    wants: Wants,
}

impl Tally {
    fn new(buyers: usize, wants: Wants) -> Tally {
        Tally {
            marks: Marks::new(buyers, wants),
            wants,
        }
    }

    /// Counts entries into the marks (without clearing them first), every entry
    /// another order.
    fn count(&mut self, entries: &[u32]) -> BuyerCounts {
        let mut c = BuyerCounts::default();
        if !self.marks.wide {
            // Distinct buyers only: one bit each, as tight as it gets.
            let words = &mut self.marks.words;
            for e in entries {
                let b = e & BUYER;
                let (w, bit) = ((b >> 6) as usize, 1u64 << (b & 63));
                c.distinct += i64::from(words[w] & bit == 0);
                words[w] |= bit;
            }
            return c;
        }
        let wants = self.wants;
        for e in entries {
            c.add(self.marks.mark(*e, wants, || true));
        }
        c
    }

    /// Entries in row order with [`ORDER_FIRST`] on each order's first: the orders
    /// with an entry in a group `folded` marks, each once.
    fn count_orders(&mut self, pairs: &[(u32, u32)], folded: impl Fn(u32) -> bool) -> BuyerCounts {
        let (mut c, mut counted) = (BuyerCounts::default(), false);
        for &(g, e) in pairs {
            counted &= e & ORDER_FIRST == 0;
            if !counted && folded(g) {
                counted = true;
                c.add(self.marks.mark(e, self.wants, || true));
            }
        }
        c
    }

    /// Clears what these entries set.
    fn clear(&mut self, entries: &[u32]) {
        for e in entries {
            self.marks.clear(*e);
        }
    }
}

/// Buyers per bucket of one worker: the marks of the bucket being read, the buyers in
/// it (to clear them), and the marks of the worker's first bucket, which may continue
/// the previous worker's last one.
#[derive(Clone)]
struct BucketBits {
    marks: Marks,
    wants: Wants,
    set: Vec<u32>,
    current: u32,
    counts: Vec<BuyerCounts>,
    first: Option<(u32, Marks)>,
}

impl BucketBits {
    fn new(buyers: usize, groups: usize, wants: Wants) -> BucketBits {
        BucketBits {
            marks: Marks::new(buyers, wants),
            wants,
            set: Vec::new(),
            current: u32::MAX,
            counts: vec![BuyerCounts::default(); groups],
            first: None,
        }
    }

    /// One paying order of bucket `g` (each order is met once).
    #[inline]
    fn add(&mut self, g: u32, entry: u32) {
        if g != self.current {
            self.next_bucket(g);
        }
        if !self.marks.wide {
            let b = entry & BUYER;
            let (w, bit) = ((b >> 6) as usize, 1u64 << (b & 63));
            let word = &mut self.marks.words[w];
            if *word & bit == 0 {
                *word |= bit;
                self.set.push(b);
                self.counts[g as usize].distinct += 1;
            }
            return;
        }
        let added = self.marks.mark(entry, self.wants, || true);
        if added.distinct != 0 {
            self.set.push(entry & BUYER);
        }
        self.counts[g as usize].add(added);
    }

    /// The paying orders of one bucket, their words prefetched a few orders ahead.
    fn add_all(&mut self, g: u32, entries: &[u32]) {
        const AHEAD: usize = 12;
        if g != self.current {
            self.next_bucket(g);
        }
        if self.marks.wide {
            for i in 0..entries.len() {
                if let Some(next) = entries.get(i + AHEAD) {
                    prefetch(&self.marks.words, ((next & BUYER) >> 4) as usize);
                }
                self.add(g, entries[i]);
            }
            return;
        }
        // Distinct buyers only: new buyers are appended to the set without a branch.
        let words = &mut self.marks.words;
        let mut len = self.set.len();
        self.set.resize(len + entries.len(), 0);
        for i in 0..entries.len() {
            if let Some(next) = entries.get(i + AHEAD) {
                prefetch(words, ((next & BUYER) >> 6) as usize);
            }
            let b = entries[i] & BUYER;
            let (w, bit) = ((b >> 6) as usize, 1u64 << (b & 63));
            let word = words[w];
            words[w] = word | bit;
            self.set[len] = b;
            len += usize::from(word & bit == 0);
        }
        self.counts[g as usize].distinct += (len - (self.set.len() - entries.len())) as i64;
        self.set.truncate(len);
    }

    fn next_bucket(&mut self, g: u32) {
        if self.current != u32::MAX {
            if self.first.is_none() {
                self.first = Some((self.current, self.marks.clone()));
            }
            for b in std::mem::take(&mut self.set) {
                self.marks.clear(b);
            }
        }
        self.current = g;
    }

    /// Adds the counts of the worker that read the rows after this one's.
    fn merge(&mut self, later: BucketBits) {
        for (a, b) in self.counts.iter_mut().zip(&later.counts) {
            a.add(*b);
        }
        let (their_first, their_marks) = match &later.first {
            Some((g, marks)) => (*g, marks),
            None => (later.current, &later.marks),
        };
        if self.current != u32::MAX && self.current == their_first {
            // One bucket read by both: a buyer seen by both is one buyer, and a
            // repeat buyer when not counted as one on either side; a new buyer seen
            // new by both counts once.
            let (both, repeat, counted, new_both) = self.marks.overlap(their_marks);
            let c = &mut self.counts[self.current as usize];
            c.distinct -= both;
            if self.wants.repeat {
                c.repeat += repeat - counted;
            }
            c.new -= new_both;
        }
        if later.current != u32::MAX {
            self.marks = later.marks;
            self.set = later.set;
            self.current = later.current;
        }
    }
}

/// A paying row's buyer entry: its buyer, with [`NEW_BIT`] when the order is its
/// buyer's first paid order in the shop.
#[inline]
fn entry(seg: &Segment, r: usize) -> u32 {
    seg.buyer[r]
        | if seg.flags[r] & FIRST != 0 {
            NEW_BIT
        } else {
            0
        }
}

/// The buyer entries of the paying orders among `rows`, into `out` (cleared first).
fn paying_entries(seg: &Segment, rows: impl IntoIterator<Item = u32>, out: &mut Vec<u32>) {
    out.clear();
    for r in rows {
        if seg.flags[r as usize] & PAID != 0 {
            out.push(entry(seg, r as usize));
        }
    }
}

fn wants_of(q: &Aggregate) -> Wants {
    Wants {
        repeat: q.needs_repeat,
        new: q.needs_new,
    }
}

fn mask(len: usize, indexes: impl Iterator<Item = Option<u32>>) -> Vec<bool> {
    let mut m = vec![false; len];
    for i in indexes.flatten() {
        if let Some(slot) = m.get_mut(i as usize) {
            *slot = true;
        }
    }
    m
}

/// Answers one aggregate over the store's rows.
pub fn aggregate(store: &Store, rates: &Rates, q: &Aggregate) -> AppResult<Vec<GroupRow>> {
    if q.filters.shop_ids.is_empty() {
        return Ok(empty(q));
    }
    let tz = super::buckets::parse_zone(&q.timezone)?;
    let mut scan = Scan::new(store, rates, q)?;
    let slices = slices(q, tz, scan.scale > 0 || scan.currencies > 1);
    scan.run(&slices);
    scan.rows(q)
}

/// A breakdown's groups with the exact sums behind them, so that the rows left out of
/// the top ones fold into "other" without a second scan: counts and money add up
/// exactly before rounding, and buyers are counted again over the entries of the
/// folded groups.
pub struct Grouped<'a> {
    /// What to scan again for "other" when group marks cannot union its groups.
    source: Option<(&'a Store, &'a Rates, Aggregate)>,
    keys: Vec<String>,
    accs: Vec<Acc>,
    buyers: Vec<BuyerCounts>,
    sets: BuyerSets,
    needs_buyers: bool,
    wants: Wants,
    nbuyers: usize,
    scale: u32,
    total: Measures,
}

/// Each group's buyer entries: `offsets[g]..offsets[g + 1]` of `entries`; when orders
/// are told apart, also the entries in row order (`in_rows`, see [`Entries`]).
#[derive(Default)]
struct Lists {
    offsets: Vec<u32>,
    entries: Vec<u32>,
    in_rows: Vec<(u32, u32)>,
}

impl Lists {
    fn group(&self, g: usize) -> &[u32] {
        &self.entries[self.offsets[g] as usize..self.offsets[g + 1] as usize]
    }
}

impl Grouped<'_> {
    /// Every key with an order in the window, with its measures.
    pub fn rows(&self) -> Vec<(String, Measures)> {
        self.accs
            .iter()
            .enumerate()
            .filter(|(_, a)| a.orders > 0)
            .map(|(g, a)| (self.keys[g].clone(), a.measures(self.scale, self.buyers[g])))
            .collect()
    }

    pub fn total(&self) -> Measures {
        self.total.clone()
    }

    /// The measures of every key but `kept`, as one group.
    pub fn fold(&self, kept: &[String]) -> AppResult<Measures> {
        let keep: std::collections::HashSet<&str> = kept.iter().map(String::as_str).collect();
        let folded: Vec<bool> = self
            .keys
            .iter()
            .map(|k| !keep.contains(k.as_str()))
            .collect();
        let present = |g: &usize| folded[*g] && self.accs[*g].orders > 0;
        if let (Some((store, rates, q)), BuyerSets::Marks(marks)) = (&self.source, &self.sets) {
            if marks.total.is_some() && (0..self.keys.len()).filter(present).count() > 1 {
                // Repeat buyers of several item-level groups: one order may sit in
                // two of them, so the folded groups are scanned again as one.
                let mut q = q.clone();
                if let Grouping::Dimension { keep, .. } = &mut q.grouping {
                    *keep = Some(kept.to_vec());
                }
                let rows = aggregate(store, rates, &q)?;
                return Ok(rows
                    .into_iter()
                    .find(|r| r.key.as_deref() == Some(OTHER_KEY))
                    .map(|r| r.measures)
                    .unwrap_or_default());
            }
        }
        let mut sum = Acc::default();
        for (a, f) in self.accs.iter().zip(&folded) {
            if *f {
                sum.add(a);
            }
        }
        let mut buyers = BuyerCounts::default();
        if self.needs_buyers {
            match &self.sets {
                BuyerSets::Lists(lists) => {
                    let mut tally = Tally::new(self.nbuyers, self.wants);
                    if lists.in_rows.is_empty() {
                        for g in (0..self.keys.len()).filter(|g| folded[*g]) {
                            buyers.add(tally.count(lists.group(g)));
                        }
                    } else {
                        buyers = tally.count_orders(&lists.in_rows, |g| folded[g as usize]);
                    }
                }
                BuyerSets::Marks(marks) => {
                    buyers = marks.union((0..self.keys.len()).filter(|g| folded[*g]));
                }
            }
        }
        Ok(sum.measures(self.scale, buyers))
    }
}

/// Every group of a breakdown (`Grouping::Dimension` without `keep`).
pub fn grouped<'a>(store: &'a Store, rates: &'a Rates, q: &Aggregate) -> AppResult<Grouped<'a>> {
    let tz = super::buckets::parse_zone(&q.timezone)?;
    if q.filters.shop_ids.is_empty() {
        return Ok(Grouped {
            source: None,
            keys: Vec::new(),
            accs: Vec::new(),
            buyers: Vec::new(),
            sets: BuyerSets::Lists(Lists::default()),
            needs_buyers: false,
            wants: Wants::default(),
            nbuyers: 0,
            scale: 0,
            total: Measures::default(),
        });
    }
    let mut scan = Scan::new(store, rates, q)?;
    let slices = slices(q, tz, scan.scale > 0 || scan.currencies > 1);
    scan.run(&slices);
    let (buyers, total_buyers, sets) = scan.buyers_by_group();
    let mut total = Acc::default();
    for a in &scan.accs {
        total.add(a);
    }
    let keys = (0..scan.groups as u32)
        .map(|g| key_name(store, scan.key, g))
        .collect();
    let orders_apart = matches!(&sets, Some(BuyerSets::Marks(m)) if m.total.is_some());
    Ok(Grouped {
        source: orders_apart.then(|| (store, rates, q.clone())),
        keys,
        total: total.measures(scan.scale, total_buyers),
        accs: scan.accs,
        buyers,
        sets: sets.unwrap_or(BuyerSets::Lists(Lists::default())),
        needs_buyers: q.needs_buyers,
        wants: wants_of(q),
        nbuyers: store.buyers.len(),
        scale: scan.scale,
    })
}

fn empty(q: &Aggregate) -> Vec<GroupRow> {
    match q.grouping {
        Grouping::Dimension { keep: Some(_), .. } | Grouping::Buckets { .. } => Vec::new(),
        _ => vec![GroupRow {
            bucket: 0,
            key: None,
            measures: Measures::default(),
        }],
    }
}

/// The window's boundaries: every bucket start and (when money converts) every local
/// midnight, each with the bucket and local day that start there.
fn slices(q: &Aggregate, tz: Tz, by_day: bool) -> Vec<Slice> {
    let mut cuts: Vec<(i64, Option<u32>, Option<u32>)> =
        vec![(q.start.timestamp(), Some(0), Some(0))];
    if let Grouping::Buckets { boundaries } = &q.grouping {
        for (i, b) in boundaries.iter().enumerate().skip(1) {
            if b < &q.end {
                cuts.push((b.timestamp(), Some(i as u32), None));
            }
        }
    }
    if by_day {
        let mut day = q.first_day;
        let mut i = 0u32;
        while day < q.last_day {
            day = day.succ_opt().expect("a date within the calendar");
            i += 1;
            cuts.push((local_midnight(tz, day).timestamp(), None, Some(i)));
        }
    }
    cuts.sort_by_key(|c| c.0);
    let mut out: Vec<Slice> = Vec::with_capacity(cuts.len());
    let (mut bucket, mut day) = (0u32, 0u32);
    for (start, b, d) in cuts {
        bucket = b.unwrap_or(bucket);
        day = d.unwrap_or(day);
        match out.last_mut() {
            Some(last) if last.start == start => {
                last.bucket = bucket;
                last.day = day;
            }
            _ => out.push(Slice { start, bucket, day }),
        }
    }
    out.push(Slice {
        start: q.end.timestamp(),
        bucket: u32::MAX,
        day: u32::MAX,
    });
    out
}

impl<'a> Scan<'a> {
    fn new(store: &'a Store, rates: &Rates, q: &Aggregate) -> AppResult<Scan<'a>> {
        let f = &q.filters;
        let shop_ok = mask(
            store.shops.len(),
            f.shop_ids.iter().map(|id| store.shops.get(*id)),
        );
        // The currencies of the shops in scope, and the factors of each local day.
        let report = q.currency.as_str();
        let mut names: Vec<&str> = Vec::new();
        let mut shop_currency = vec![0usize; store.shops.len()];
        for (i, ok) in shop_ok.iter().enumerate() {
            if !ok {
                continue;
            }
            let name = store.currencies.names[store.shop_currency[i] as usize].as_str();
            let name = if name.is_empty() { report } else { name };
            shop_currency[i] = match names.iter().position(|n| *n == name) {
                Some(p) => p,
                None => {
                    names.push(name);
                    names.len() - 1
                }
            };
        }
        let converts = names.iter().any(|n| *n != report);
        let (factors, scale) = if converts {
            day_factors(rates, &names, report, q.first_day, q.last_day)?
        } else {
            (vec![1; names.len().max(1)], 0)
        };
        let texts = |d: &super::store::Dict, v: &Option<Vec<String>>| {
            v.as_ref()
                .map(|v| mask(d.len(), v.iter().map(|s| d.get(s))))
        };
        let mut province_ok = texts(&store.provinces, &f.provinces);
        if let Some(regions) = &f.regions {
            let region_ok = mask(
                store.regions.len(),
                regions.iter().map(|r| store.regions.get(r)),
            );
            let by_region: Vec<bool> = store
                .province_region
                .iter()
                .enumerate()
                .map(|(p, r)| p > 0 && *r > 0 && region_ok[*r as usize])
                .collect();
            province_ok = Some(match province_ok {
                Some(p) => p.iter().zip(&by_region).map(|(a, b)| *a && *b).collect(),
                None => by_region,
            });
        }
        if let Some(p) = province_ok.as_mut() {
            p[0] = false;
        }
        let mut payment_ok = texts(&store.payments, &f.payment_methods);
        if let Some(p) = payment_ok.as_mut() {
            p[0] = false;
        }
        let mut carrier_ok = texts(&store.carriers, &f.carriers);
        if let Some(c) = carrier_ok.as_mut() {
            c[0] = false;
        }
        let creator_ok = f.creator_ids.as_ref().map(|ids| {
            let mut m = mask(
                store.creators.len(),
                ids.iter().map(|id| store.creators.get(*id)),
            );
            m[0] = false;
            m
        });
        let mut product_ok: Option<Vec<bool>> = f.product_ids.as_ref().map(|ids| {
            mask(
                store.products.len(),
                ids.iter().map(|id| store.products.get(*id)),
            )
        });
        if let Some(categories) = &f.categories {
            let category_ok = mask(
                store.categories.len(),
                categories.iter().map(|c| store.categories.get(c)),
            );
            let by_category: Vec<bool> = store
                .product_category
                .iter()
                .enumerate()
                .map(|(p, c)| p > 0 && category_ok[*c as usize])
                .collect();
            product_ok = Some(match product_ok {
                Some(p) => p.iter().zip(&by_category).map(|(a, b)| *a && *b).collect(),
                None => by_category,
            });
        }
        if let Some(p) = product_ok.as_mut() {
            p.resize(store.products.len(), false);
            p[0] = false;
        }
        let (key, keep) = match &q.grouping {
            Grouping::Total | Grouping::Buckets { .. } => (Key::Bucket, None),
            Grouping::Dimension { dimension, keep } => (
                match dimension {
                    Dimension::Shop => Key::Shop,
                    Dimension::Platform => Key::Platform,
                    Dimension::Province => Key::Province,
                    Dimension::Region => Key::Region,
                    Dimension::Channel => Key::Channel,
                    Dimension::Creator => Key::Creator,
                    Dimension::PaymentMethod => Key::PaymentMethod,
                    Dimension::Status => Key::Status,
                    Dimension::Carrier => Key::Carrier,
                    Dimension::Product => Key::Product,
                    Dimension::Category => Key::Category,
                },
                keep.as_ref(),
            ),
        };
        let keys = match key {
            Key::Bucket => match &q.grouping {
                Grouping::Buckets { boundaries } => boundaries.len().saturating_sub(1).max(1),
                _ => 1,
            },
            Key::Shop => store.shops.len(),
            Key::Platform => store.platforms.len(),
            Key::Province => store.provinces.len(),
            Key::Region => store.regions.len(),
            Key::Channel => store.channels.len(),
            Key::Creator => store.creators.len(),
            Key::PaymentMethod => store.payments.len(),
            Key::Status => store.statuses.len(),
            Key::Carrier => store.carriers.len(),
            Key::Product => store.products.len(),
            Key::Category => store.categories.len(),
        };
        let (remap, groups) = match keep {
            Some(keep) => {
                let mut remap = vec![keep.len() as u32; keys];
                for (slot, k) in keep.iter().enumerate() {
                    if let Some(i) = key_index(store, key, k) {
                        if let Some(r) = remap.get_mut(i as usize) {
                            *r = slot as u32;
                        }
                    }
                }
                (Some(remap), keep.len() + 1)
            }
            None => (None, keys),
        };
        let currencies = names.len().max(1);
        Ok(Scan {
            store,
            shop_ok,
            shop_currency,
            currencies,
            province_ok,
            channel_ok: texts(&store.channels, &f.channels),
            payment_ok,
            carrier_ok,
            creator_ok,
            on_items: f.on_items() || matches!(key, Key::Product | Key::Category),
            selected_products: product_ok
                .as_ref()
                .map(|m| (0..m.len() as u32).filter(|p| m[*p as usize]).collect()),
            product_ok,
            key,
            remap,
            groups,
            accs: vec![Acc::default(); groups],
            day_money: vec![DayMoney::default(); groups * currencies],
            touched: Vec::new(),
            factors,
            scale,
            columns: q.columns,
            wants: wants_of(q),
            buyers: match (q.needs_buyers, key) {
                (false, _) => Distinct::None,
                (true, Key::Bucket) => {
                    Distinct::Bits(BucketBits::new(store.buyers.len(), groups, wants_of(q)))
                }
                (true, Key::Product | Key::Category) => Distinct::Pairs(Entries {
                    with_orders: q.needs_repeat,
                    ..Entries::default()
                }),
                // Marks per group may replace these once the window's rows are known.
                (true, _) => Distinct::Pairs(Entries::default()),
            },
        })
    }

    #[inline]
    fn passes(&self, seg: &Segment, r: usize) -> bool {
        if seg.flags[r] & LIVE == 0 || !self.shop_ok[seg.shop[r] as usize] {
            return false;
        }
        if let Some(m) = &self.province_ok {
            if !m[seg.province[r] as usize] {
                return false;
            }
        }
        if let Some(m) = &self.channel_ok {
            if !m[seg.channel[r] as usize] {
                return false;
            }
        }
        if let Some(m) = &self.payment_ok {
            if !m[seg.payment[r] as usize] {
                return false;
            }
        }
        if let Some(m) = &self.creator_ok {
            if !m[seg.creator[r] as usize] {
                return false;
            }
        }
        if let Some(m) = &self.carrier_ok {
            if !m[seg.carrier[r] as usize] {
                return false;
            }
        }
        true
    }

    /// The key index of an order-level key (or of a line's product for item keys).
    #[inline]
    fn key_of(&self, seg: &Segment, r: usize, bucket: u32, product: u32) -> u32 {
        let s = self.store;
        match self.key {
            Key::Bucket => bucket,
            Key::Shop => seg.shop[r],
            Key::Platform => s.shop_platform[seg.shop[r] as usize],
            Key::Province => u32::from(seg.province[r]),
            Key::Region => s.province_region[seg.province[r] as usize],
            Key::Channel => u32::from(seg.channel[r]),
            Key::Creator => seg.creator[r],
            Key::PaymentMethod => u32::from(seg.payment[r]),
            Key::Status => u32::from(seg.status[r]),
            Key::Carrier => u32::from(seg.carrier[r]),
            Key::Product => product,
            Key::Category => s.product_category[product as usize],
        }
    }

    #[inline]
    fn group(&self, key: u32) -> usize {
        match &self.remap {
            Some(remap) => remap[key as usize] as usize,
            None => key as usize,
        }
    }

    /// Counts one (order, group): the order-level counts and its buyer.
    #[inline]
    fn count(&mut self, seg: &Segment, r: usize, g: usize) {
        let flags = seg.flags[r];
        let paid = i64::from(flags & PAID != 0);
        let a = &mut self.accs[g];
        a.orders += 1;
        a.paid_orders += paid;
        a.refund_orders += paid & i64::from(flags & REFUNDED != 0);
        a.dispute_orders += i64::from(flags & DISPUTED != 0);
        if flags & DELIVERED != 0 {
            a.delivered_orders += 1;
            a.on_time_orders += i64::from(flags & ON_TIME != 0);
            a.delivery_us += i128::from(seg.delivery_us[r]);
        }
        if paid != 0 {
            let order = self.ordinal(seg, r);
            match &mut self.buyers {
                Distinct::None => {}
                Distinct::Bits(bits) => bits.add(g as u32, entry(seg, r)),
                Distinct::Groups(marks) => marks.add_order(g as u32, entry(seg, r), order),
                Distinct::Pairs(pairs) => pairs.push(g as u32, entry(seg, r), order),
            }
        }
    }

    /// A row's number across the body and the tail (which buyer entries of one
    /// order share).
    #[inline]
    fn ordinal(&self, seg: &Segment, r: usize) -> u32 {
        if std::ptr::eq(seg, &self.store.tail) {
            (self.store.body.len() + r) as u32
        } else {
            r as u32
        }
    }

    /// Adds raw money of group `g` in a shop currency to the day being summed.
    #[inline]
    fn money(&mut self, g: usize, currency: usize, gmv: i64, refund: i64, commission: i64) {
        if gmv == 0 && refund == 0 && commission == 0 {
            return;
        }
        let i = g * self.currencies + currency;
        let m = &mut self.day_money[i];
        if m.gmv == 0 && m.refund == 0 && m.commission == 0 {
            self.touched.push(i as u32);
        }
        m.gmv += gmv;
        m.refund += refund;
        m.commission += commission;
    }

    /// Adds a group's counts (orders, paid, refund orders, disputes, delivered, units,
    /// delivery time, on time) summed outside `accs`.
    fn add_counts(&mut self, g: usize, c: &[i64; 8]) {
        let a = &mut self.accs[g];
        a.orders += c[0];
        a.paid_orders += c[1];
        a.refund_orders += c[2];
        a.dispute_orders += c[3];
        a.delivered_orders += c[4];
        a.units += c[5];
        a.delivery_us += i128::from(c[6]);
        a.on_time_orders += c[7];
    }

    /// A filter on an order-level column other than the shop.
    fn row_filtered(&self) -> bool {
        self.province_ok.is_some()
            || self.channel_ok.is_some()
            || self.payment_ok.is_some()
            || self.creator_ok.is_some()
            || self.carrier_ok.is_some()
    }

    /// Converts the money of the day that ended with its factors.
    fn flush(&mut self, day: u32) {
        let touched = std::mem::take(&mut self.touched);
        for i in &touched {
            let i = *i as usize;
            let (g, c) = (i / self.currencies, i % self.currencies);
            let factor = self.factors[day as usize * self.currencies + c];
            let m = std::mem::take(&mut self.day_money[i]);
            let a = &mut self.accs[g];
            a.gmv += i128::from(m.gmv) * factor;
            a.refund += i128::from(m.refund) * factor;
            a.commission += i128::from(m.commission) * factor;
        }
        self.touched = touched;
        self.touched.clear();
    }

    /// One order row of a range with constant bucket.
    #[inline]
    fn row(&mut self, seg: &Segment, r: usize, bucket: u32) {
        if !self.passes(seg, r) {
            return;
        }
        let currency = self.shop_currency[seg.shop[r] as usize];
        if !self.on_items {
            let g = self.group(self.key_of(seg, r, bucket, 0));
            self.count(seg, r, g);
            let a = &mut self.accs[g];
            a.units += seg.units[r];
            self.money(g, currency, seg.gmv[r], seg.refund[r], seg.commission[r]);
            return;
        }
        let lines = seg.items(r);
        let first = lines.start;
        let paid = i64::from(seg.flags[r] & PAID != 0);
        // Keys this order already counted in (product-orders for item keys).
        let mut counted: [usize; 8] = [usize::MAX; 8];
        let mut extra: Vec<usize> = Vec::new();
        let mut n = 0usize;
        for l in lines {
            let product = seg.item_product[l];
            if let Some(m) = &self.product_ok {
                if !m[product as usize] {
                    continue;
                }
            }
            // Product-orders are per product, also in a CATEGORY row (which sums its
            // products' rows) and when several keys fold into "other".
            let key = self.key_of(seg, r, bucket, product);
            let g = self.group(key);
            let k = if matches!(self.key, Key::Product | Key::Category) {
                product as usize
            } else {
                key as usize
            };
            let seen = counted[..n.min(8)].contains(&k) || extra.contains(&k);
            if !seen {
                if n < 8 {
                    counted[n] = k;
                } else {
                    extra.push(k);
                }
                n += 1;
                self.count(seg, r, g);
            }
            self.accs[g].units += i64::from(seg.item_quantity[l]) * paid;
            // The order's refund and commission belong to its first line's product.
            let (refund, commission) = if l == first {
                (seg.refund[r], seg.commission[r])
            } else {
                (0, 0)
            };
            self.money(g, currency, seg.item_paid[l] * paid, refund, commission);
        }
    }

    /// The window's work in time order: each slice's body rows (a binary-searched
    /// range), then its tail rows, so that buckets are met in order and each local
    /// day's money is converted when its rows are summed.
    fn plan(&self, slices: &[Slice]) -> Vec<Work> {
        let body = &self.store.body;
        let tail = &self.store.tail;
        let (start, end) = (slices[0].start, slices[slices.len() - 1].start);
        let mut tail_rows: Vec<Vec<u32>> = vec![Vec::new(); slices.len()];
        for r in 0..tail.len() {
            let t = tail.placed_at[r];
            if t >= start && t < end && tail.flags[r] & LIVE != 0 {
                tail_rows[slices.partition_point(|s| s.start <= t) - 1].push(r as u32);
            }
        }
        let mut work = Vec::with_capacity(slices.len() * 2);
        let mut lo = body.placed_at.partition_point(|t| *t < start);
        for (w, rows) in slices.windows(2).zip(tail_rows) {
            let hi = lo + body.placed_at[lo..].partition_point(|t| *t < w[1].start);
            if hi > lo {
                work.push(Work {
                    rows: Rows::Body(lo, hi),
                    bucket: w[0].bucket,
                    day: w[0].day,
                });
            }
            lo = hi;
            if !rows.is_empty() {
                work.push(Work {
                    rows: Rows::Tail(rows),
                    bucket: w[0].bucket,
                    day: w[0].day,
                });
            }
        }
        work
    }

    fn run_work(&mut self, work: &[Work]) {
        let (body, tail) = (&self.store.body, &self.store.tail);
        for w in work {
            match &w.rows {
                Rows::Body(lo, hi) if self.fast() => self.sum_range(body, *lo, *hi, w.bucket),
                Rows::Body(lo, hi) if !self.on_items => self.sum_keyed(body, *lo, *hi),
                Rows::Body(lo, hi) => self.sum_items(body, *lo, *hi, w.bucket),
                Rows::Tail(rows) => {
                    for r in rows {
                        self.row(tail, *r as usize, w.bucket);
                    }
                }
            }
            self.flush(w.day);
        }
    }

    /// Totals and trends of order-level metrics: the group is the slice's, so the
    /// sums stay in registers.
    fn fast(&self) -> bool {
        self.key == Key::Bucket && !self.on_items && self.remap.is_none()
    }

    fn sum_range(&mut self, seg: &Segment, lo: usize, hi: usize, bucket: u32) {
        let g = bucket as usize;
        let cols = self.columns;
        let single = self.currencies == 1;
        let mut acc = Acc::default();
        let (mut units, mut delivery) = (0i64, 0i64);
        let mut money = vec![DayMoney::default(); self.currencies];
        let mut picked = [0u32; CHUNK];
        let mut paying: Vec<u32> = Vec::with_capacity(CHUNK);
        let mut start = lo;
        while start < hi {
            let end = (start + CHUNK).min(hi);
            let n = self.select(seg, start, end, &mut picked);
            for &r in &picked[..n] {
                let r = r as usize;
                let flags = seg.flags[r];
                let paid = i64::from(flags & PAID != 0);
                acc.orders += 1;
                acc.paid_orders += paid;
                acc.refund_orders += paid & i64::from(flags & REFUNDED != 0);
                acc.dispute_orders += i64::from(flags & DISPUTED != 0);
                acc.delivered_orders += i64::from(flags & DELIVERED != 0);
                acc.on_time_orders += i64::from(flags & ON_TIME != 0);
                if cols.delivery {
                    delivery += seg.delivery_us[r];
                }
                if cols.units {
                    units += seg.units[r];
                }
                let c = if single {
                    0
                } else {
                    self.shop_currency[seg.shop[r] as usize]
                };
                let m = &mut money[c];
                if cols.gmv {
                    m.gmv += seg.gmv[r];
                }
                if cols.refund {
                    m.refund += seg.refund[r];
                }
                if cols.commission {
                    m.commission += seg.commission[r];
                }
            }
            if let Distinct::Bits(bits) = &mut self.buyers {
                paying_entries(seg, picked[..n].iter().copied(), &mut paying);
                bits.add_all(g as u32, &paying);
            }
            start = end;
        }
        acc.units = units;
        acc.delivery_us = i128::from(delivery);
        self.accs[g].add(&acc);
        for (c, m) in money.into_iter().enumerate() {
            self.money(g, c, m.gmv, m.refund, m.commission);
        }
    }

    /// Picks the rows of `lo..hi` (at most [`CHUNK`]) that are live, in a shop in scope
    /// and pass every row filter; returns how many it wrote to `picked`. A column at a
    /// time and without branches: each active filter reads its column for the chunk.
    fn select(&self, seg: &Segment, lo: usize, hi: usize, picked: &mut [u32; CHUNK]) -> usize {
        let n = hi - lo;
        let mut ok = [0u8; CHUNK];
        let ok = &mut ok[..n];
        for ((o, f), shop) in ok.iter_mut().zip(&seg.flags[lo..hi]).zip(&seg.shop[lo..hi]) {
            *o = u8::from(f & LIVE != 0) & u8::from(self.shop_ok[*shop as usize]);
        }
        fn and<T: Copy>(ok: &mut [u8], column: &[T], table: &Option<Vec<bool>>)
        where
            u64: From<T>,
        {
            if let Some(table) = table {
                for (o, v) in ok.iter_mut().zip(column) {
                    *o &= u8::from(table[u64::from(*v) as usize]);
                }
            }
        }
        and(ok, &seg.province[lo..hi], &self.province_ok);
        and(ok, &seg.channel[lo..hi], &self.channel_ok);
        and(ok, &seg.payment[lo..hi], &self.payment_ok);
        and(ok, &seg.carrier[lo..hi], &self.carrier_ok);
        and(ok, &seg.creator[lo..hi], &self.creator_ok);
        let mut k = 0usize;
        for (i, o) in ok.iter().enumerate() {
            picked[k] = (lo + i) as u32;
            k += usize::from(*o);
        }
        k
    }

    /// Breakdowns by an order-level dimension: one pass with the key read per row
    /// and money kept per (group, currency) until the range ends.
    fn sum_keyed(&mut self, seg: &Segment, lo: usize, hi: usize) {
        let store = self.store;
        match self.key {
            Key::Shop => self.sum_keyed_by(seg, lo, hi, |seg, r| seg.shop[r]),
            Key::Platform => self.sum_keyed_by(seg, lo, hi, |seg, r| {
                store.shop_platform[seg.shop[r] as usize]
            }),
            Key::Province => self.sum_keyed_by(seg, lo, hi, |seg, r| u32::from(seg.province[r])),
            Key::Region => self.sum_keyed_by(seg, lo, hi, |seg, r| {
                store.province_region[seg.province[r] as usize]
            }),
            Key::Channel => self.sum_keyed_by(seg, lo, hi, |seg, r| u32::from(seg.channel[r])),
            Key::Creator => self.sum_keyed_by(seg, lo, hi, |seg, r| seg.creator[r]),
            Key::PaymentMethod => {
                self.sum_keyed_by(seg, lo, hi, |seg, r| u32::from(seg.payment[r]))
            }
            Key::Status => self.sum_keyed_by(seg, lo, hi, |seg, r| u32::from(seg.status[r])),
            Key::Carrier => self.sum_keyed_by(seg, lo, hi, |seg, r| u32::from(seg.carrier[r])),
            Key::Bucket | Key::Product | Key::Category => {
                for r in lo..hi {
                    self.row(seg, r, 0);
                }
            }
        }
    }

    fn sum_keyed_by(
        &mut self,
        seg: &Segment,
        lo: usize,
        hi: usize,
        key: impl Fn(&Segment, usize) -> u32,
    ) {
        // Rows are selected a chunk at a time without branches, then summed into four
        // interleaved copies of the sums, so that consecutive rows of one key do not
        // wait for each other's additions.
        const LANES: usize = 4;
        let (groups, ncur, cols) = (self.groups, self.currencies, self.columns);
        // Per lane and group: orders, paid, refund orders, disputes, delivered, units,
        // delivery time; per lane, group and currency: GMV, refund, commission.
        let mut counts = vec![[0i64; 8]; groups * LANES];
        let mut money = vec![[0i64; 3]; groups * ncur * LANES];
        let mut picked = [0u32; CHUNK];
        let mut keys = [0u32; CHUNK];
        let mut marked: Vec<(u32, u32, u32)> = Vec::with_capacity(CHUNK);
        let mut start = lo;
        while start < hi {
            let end = (start + CHUNK).min(hi);
            let n = self.select(seg, start, end, &mut picked);
            for (k, r) in keys.iter_mut().zip(&picked[..n]) {
                *k = key(seg, *r as usize);
            }
            if let Some(remap) = &self.remap {
                for k in &mut keys[..n] {
                    *k = remap[*k as usize];
                }
            }
            for i in 0..n {
                let (r, g) = (picked[i] as usize, keys[i] as usize);
                let lane = i & (LANES - 1);
                let flags = seg.flags[r];
                let paid = i64::from(flags & PAID != 0);
                let c = &mut counts[lane * groups + g];
                c[0] += 1;
                c[1] += paid;
                c[2] += paid & i64::from(flags & REFUNDED != 0);
                c[3] += i64::from(flags & DISPUTED != 0);
                c[4] += i64::from(flags & DELIVERED != 0);
                c[7] += i64::from(flags & ON_TIME != 0);
                if cols.units {
                    c[5] += seg.units[r];
                }
                if cols.delivery {
                    c[6] += seg.delivery_us[r];
                }
                if cols.gmv || cols.refund || cols.commission {
                    let cur = self.shop_currency[seg.shop[r] as usize];
                    let m = &mut money[(lane * groups + g) * ncur + cur];
                    if cols.gmv {
                        m[0] += seg.gmv[r];
                    }
                    if cols.refund {
                        m[1] += seg.refund[r];
                    }
                    if cols.commission {
                        m[2] += seg.commission[r];
                    }
                }
            }
            let base = self.ordinal(seg, 0);
            if let Distinct::Groups(marks) = &mut self.buyers {
                marked.clear();
                for i in 0..n {
                    let r = picked[i] as usize;
                    if seg.flags[r] & PAID != 0 {
                        marked.push((keys[i], entry(seg, r), base + r as u32));
                    }
                }
                marks.add_all(&marked);
            }
            if let Distinct::Pairs(pairs) = &mut self.buyers {
                if pairs.with_orders {
                    for i in 0..n {
                        let r = picked[i] as usize;
                        if seg.flags[r] & PAID != 0 {
                            pairs.push(keys[i], entry(seg, r), base + r as u32);
                        }
                    }
                } else {
                    for i in 0..n {
                        let r = picked[i] as usize;
                        if seg.flags[r] & PAID != 0 {
                            pairs.pairs.push((keys[i], entry(seg, r)));
                        }
                    }
                }
            }
            start = end;
        }
        for lane in 0..LANES {
            for g in 0..groups {
                if counts[lane * groups + g][0] == 0 {
                    continue;
                }
                self.add_counts(g, &counts[lane * groups + g]);
                for cur in 0..ncur {
                    let m = money[(lane * groups + g) * ncur + cur];
                    self.money(g, cur, m[0], m[1], m[2]);
                }
            }
        }
    }

    /// With a product or category filter over body rows: the rows of `lo..hi` with a
    /// line of a selected product, as bits from `lo`, when they are so few that
    /// reading them beats reading every row in order: one row in 64 at most, sparser
    /// than a cache line of any column (on dataset L, a few products' rows are under
    /// 1%; two categories' rows, 10-25%, were twice as slow this way).
    fn product_candidates(&self, seg: &Segment, lo: usize, hi: usize) -> Option<Vec<u64>> {
        let selected = self.selected_products.as_ref()?;
        if !std::ptr::eq(seg, &self.store.body) {
            return None;
        }
        // A category selects hundreds of products and a tenth of the rows or more:
        // not worth the binary searches.
        if selected.len() > 64 {
            return None;
        }
        let index = &self.store.product_rows;
        let mut lists: Vec<&[u32]> = Vec::with_capacity(selected.len());
        let mut total = 0usize;
        for p in selected {
            let list = index.of(*p, lo, hi);
            total += list.len();
            if total * 64 > hi - lo {
                return None;
            }
            lists.push(list);
        }
        let mut bits = vec![0u64; (hi - lo).div_ceil(64)];
        let changed = index
            .changed
            .iter()
            .filter(|r| (lo..hi).contains(&(**r as usize)));
        for r in lists.into_iter().flatten().chain(changed) {
            let i = *r as usize - lo;
            bits[i / 64] |= 1 << (i % 64);
        }
        Some(bits)
    }

    /// Questions over item lines (a PRODUCT or CATEGORY breakdown, or a product or
    /// category filter): each order's matching lines, product-orders counted once per
    /// (order, product), or once per order for other keys; the order's refund and
    /// commission with its first line when that line matches.
    fn sum_items(&mut self, seg: &Segment, lo: usize, hi: usize, bucket: u32) {
        let (groups, ncur) = (self.groups, self.currencies);
        let by_line = matches!(self.key, Key::Product | Key::Category);
        let store = self.store;
        let base = self.ordinal(seg, 0);
        let mut counts = vec![[0i64; 8]; groups];
        let mut money = vec![[0i64; 3]; groups * ncur];
        let mut seen: Vec<u32> = Vec::with_capacity(8);
        let mut lines: Vec<(u32, u32, u32)> = Vec::new();
        let candidates = self.product_candidates(seg, lo, hi);
        let mut picked = [0u32; CHUNK];
        let mut start = lo;
        while start < hi {
            let end = (start + CHUNK).min(hi);
            // The chunk's rows that pass the order-level filters: selected column by
            // column, or (with a product index) the candidates checked one by one.
            let n = match &candidates {
                None => self.select(seg, start, end, &mut picked),
                Some(bits) => {
                    let mut n = 0usize;
                    let words = (start - lo) / 64..(end - lo).div_ceil(64);
                    for (word, w) in bits[words.clone()].iter().zip(words) {
                        let mut word = *word;
                        while word != 0 {
                            let r = lo + w * 64 + word.trailing_zeros() as usize;
                            word &= word - 1;
                            picked[n] = r as u32;
                            n += usize::from(self.passes(seg, r));
                        }
                    }
                    n
                }
            };
            for &r in &picked[..n] {
                let r = r as usize;
                let flags = seg.flags[r];
                let shop = seg.shop[r] as usize;
                let (first, last) = (seg.item_start[r] as usize, seg.item_start[r + 1] as usize);
                let paid = i64::from(flags & PAID != 0);
                let order_key = if by_line {
                    0
                } else {
                    self.key_of(seg, r, bucket, 0)
                };
                let cur = self.shop_currency[shop];
                seen.clear();
                for l in first..last {
                    let product = seg.item_product[l];
                    if let Some(m) = &self.product_ok {
                        if !m[product as usize] {
                            continue;
                        }
                    }
                    let g = self.group(match self.key {
                        Key::Product => product,
                        Key::Category => store.product_category[product as usize],
                        _ => order_key,
                    });
                    // Product-orders are per product, also in a CATEGORY row.
                    let once = if by_line { product } else { 0 };
                    if !seen.contains(&once) {
                        seen.push(once);
                        let c = &mut counts[g];
                        c[0] += 1;
                        c[1] += paid;
                        c[2] += paid & i64::from(flags & REFUNDED != 0);
                        c[3] += i64::from(flags & DISPUTED != 0);
                        c[4] += i64::from(flags & DELIVERED != 0);
                        c[6] += seg.delivery_us[r];
                        c[7] += i64::from(flags & ON_TIME != 0);
                        if paid != 0 {
                            match &mut self.buyers {
                                Distinct::None => {}
                                Distinct::Bits(bits) => bits.add(g as u32, entry(seg, r)),
                                Distinct::Groups(_) => {
                                    lines.push((g as u32, entry(seg, r), base + r as u32))
                                }
                                Distinct::Pairs(pairs) => {
                                    pairs.push(g as u32, entry(seg, r), base + r as u32)
                                }
                            }
                        }
                    }
                    counts[g][5] += i64::from(seg.item_quantity[l]) * paid;
                    let m = &mut money[g * ncur + cur];
                    m[0] += seg.item_paid[l] * paid;
                    if l == first {
                        m[1] += seg.refund[r];
                        m[2] += seg.commission[r];
                    }
                }
            }
            if let Distinct::Groups(marks) = &mut self.buyers {
                marks.add_all(&lines);
                lines.clear();
            }
            start = end;
        }
        for (g, c) in counts.iter().enumerate() {
            if c[0] == 0 {
                continue;
            }
            self.add_counts(g, c);
            for cur in 0..ncur {
                let m = money[g * ncur + cur];
                self.money(g, cur, m[0], m[1], m[2]);
            }
        }
    }

    /// Totals and trends of order-level metrics without row filters or BUYERS, over
    /// windows cut at whole 15-minute slots (every zone's are): the body's cells
    /// answer them instead of its rows.
    fn cells_answer(&self, slices: &[Slice]) -> bool {
        self.key == Key::Bucket
            && !self.on_items
            && self.remap.is_none()
            && matches!(self.buyers, Distinct::None | Distinct::Bits(_))
            && !self.row_filtered()
            && slices.iter().all(|s| s.start.rem_euclid(SLOT) == 0)
    }

    fn run_cells(&mut self, slices: &[Slice]) {
        let store = self.store;
        let cells = &store.cells;
        let shops: Vec<usize> = (0..cells.cells.len().min(self.shop_ok.len()))
            .filter(|s| self.shop_ok[*s])
            .collect();
        for w in slices.windows(2) {
            let (from, to) = (w[0].start / SLOT, w[1].start / SLOT);
            let g = w[0].bucket as usize;
            let mut acc = Acc::default();
            for &shop in &shops {
                let list = &cells.cells[shop];
                let first = cells.first[shop];
                let lo = (from - first).clamp(0, list.len() as i64) as usize;
                let hi = (to - first).clamp(0, list.len() as i64) as usize;
                let mut m = DayMoney::default();
                let mut delivery = 0i64;
                for c in &list[lo..hi] {
                    acc.orders += c.orders;
                    acc.paid_orders += c.paid_orders;
                    acc.refund_orders += c.refund_orders;
                    acc.dispute_orders += c.dispute_orders;
                    acc.delivered_orders += c.delivered_orders;
                    acc.on_time_orders += c.on_time_orders;
                    acc.units += c.units;
                    delivery += c.delivery_us;
                    m.gmv += c.gmv;
                    m.refund += c.refund;
                    m.commission += c.commission;
                }
                acc.delivery_us += i128::from(delivery);
                self.money(g, self.shop_currency[shop], m.gmv, m.refund, m.commission);
            }
            self.accs[g].add(&acc);
            self.flush(w[0].day);
        }
        // Rows written since loading are in the tail, not in the cells.
        let tail = &store.tail;
        for w in self.plan(slices) {
            if let Rows::Tail(rows) = &w.rows {
                for r in rows {
                    self.row(tail, *r as usize, w.bucket);
                }
                self.flush(w.day);
            }
        }
    }

    /// Runs the work on two threads when there is enough of it, each half with its own
    /// sums, then adds the later half's into the earlier's.
    fn run(&mut self, slices: &[Slice]) {
        if self.cells_answer(slices) {
            // The cells hold the sums; buyers are then read from the rows alone.
            let buyers = std::mem::replace(&mut self.buyers, Distinct::None);
            self.run_cells(slices);
            self.buyers = buyers;
            if matches!(self.buyers, Distinct::Bits(_)) {
                let work = self.plan(slices);
                self.run_split(work, Scan::run_buyers);
            }
            return;
        }
        let work = self.plan(slices);
        if matches!(self.buyers, Distinct::Pairs(_)) {
            let rows: usize = work.iter().map(Work::len).sum();
            let buyers = self.store.buyers.len();
            let orders_apart =
                matches!(self.key, Key::Product | Key::Category) && self.wants.repeat;
            let fitting = GroupMarks::fitting(buyers, self.groups, self.wants, rows, orders_apart);
            if let Some(marks) = fitting {
                #[cfg(test)]
                if tests::ENTRIES_ONLY.with(|e| e.get()) {
                    return self.run_split(work, Scan::run_work);
                }
                self.buyers = Distinct::Groups(marks);
            }
        }
        self.run_split(work, Scan::run_work);
    }

    /// The buyers of totals and trends without row filters: each range's paying
    /// orders into the bucket's marks, in time order.
    fn run_buyers(&mut self, work: &[Work]) {
        // The body's rows are picked below by liveness and scope alone.
        debug_assert!(
            !self.row_filtered(),
            "run_buyers reads rows without filters"
        );
        let (body, tail) = (&self.store.body, &self.store.tail);
        let mut chunk = [0u32; CHUNK];
        let mut paying: Vec<u32> = Vec::with_capacity(CHUNK);
        for w in work {
            match &w.rows {
                Rows::Body(lo, hi) => {
                    // No row filters here (the cells answer): one branch-free pass
                    // per chunk picks live, paying rows of shops in scope.
                    let mut start = *lo;
                    while start < *hi {
                        let end = (start + CHUNK).min(*hi);
                        let mut n = 0usize;
                        for r in start..end {
                            let flags = body.flags[r];
                            chunk[n] = entry(body, r);
                            n += usize::from(
                                (flags & (LIVE | PAID) == LIVE | PAID)
                                    & self.shop_ok[body.shop[r] as usize],
                            );
                        }
                        if let Distinct::Bits(bits) = &mut self.buyers {
                            bits.add_all(w.bucket, &chunk[..n]);
                        }
                        start = end;
                    }
                }
                Rows::Tail(rows) => {
                    let passing = rows
                        .iter()
                        .copied()
                        .filter(|r| self.passes(tail, *r as usize));
                    paying_entries(tail, passing, &mut paying);
                    if let Distinct::Bits(bits) = &mut self.buyers {
                        bits.add_all(w.bucket, &paying);
                    }
                }
            }
        }
    }

    /// Runs `each` over the work, on two threads when there is enough of it, each
    /// half with its own sums and marks, then adds the later half's into the earlier's.
    fn run_split(&mut self, work: Vec<Work>, each: fn(&mut Scan<'a>, &[Work])) {
        let rows: usize = work.iter().map(Work::len).sum();
        if rows < PARALLEL_FROM.load(std::sync::atomic::Ordering::Relaxed) {
            each(self, &work);
            return;
        }
        // Split at the middle row (inside a body range if need be).
        let mut first = Vec::new();
        let mut second = Vec::new();
        let mut seen = 0usize;
        for w in work {
            let n = w.len();
            if seen >= rows / 2 {
                second.push(w);
            } else if seen + n <= rows / 2 {
                first.push(w);
            } else {
                match w.rows {
                    Rows::Body(lo, hi) => {
                        let mid = lo + (rows / 2 - seen);
                        first.push(Work {
                            rows: Rows::Body(lo, mid),
                            ..w
                        });
                        second.push(Work {
                            rows: Rows::Body(mid, hi),
                            ..w
                        });
                    }
                    Rows::Tail(_) => first.push(w),
                }
            }
            seen += n;
        }
        // The later half starts from zero sums (the cells may have summed already).
        let mut later = self.clone();
        later.accs.fill(Acc::default());
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| each(&mut later, &second));
            each(self, &first);
            handle.join().expect("scan worker");
        });
        self.merge(later);
    }

    fn merge(&mut self, later: Scan<'_>) {
        for (a, b) in self.accs.iter_mut().zip(&later.accs) {
            a.add(b);
        }
        match (&mut self.buyers, later.buyers) {
            (Distinct::Bits(a), Distinct::Bits(b)) => a.merge(b),
            (Distinct::Groups(a), Distinct::Groups(b)) => a.merge(&b),
            (Distinct::Pairs(a), Distinct::Pairs(b)) => a.extend(b),
            _ => {}
        }
    }

    fn buyers(&mut self) -> (Vec<BuyerCounts>, BuyerCounts) {
        let (counts, total, _) = self.buyers_by_group();
        (counts, total)
    }

    /// Buyer counts per group and in all, and (from entries) each group's entries.
    fn buyers_by_group(&mut self) -> (Vec<BuyerCounts>, BuyerCounts, Option<BuyerSets>) {
        let entries = match std::mem::replace(&mut self.buyers, Distinct::None) {
            Distinct::None => {
                return (
                    vec![BuyerCounts::default(); self.groups],
                    BuyerCounts::default(),
                    None,
                )
            }
            // Totals and trends: the total is the one group's (a trend has no total).
            Distinct::Bits(bits) => {
                let total = bits.counts.first().copied().unwrap_or_default();
                return (bits.counts, total, None);
            }
            Distinct::Groups(marks) => {
                let counts = (0..self.groups).map(|g| marks.counts(g)).collect();
                let total = marks.total(self.groups);
                return (counts, total, Some(BuyerSets::Marks(marks)));
            }
            Distinct::Pairs(entries) => entries,
        };
        let nbuyers = self.store.buyers.len();
        let mut offsets = vec![0u32; self.groups + 1];
        for (g, _) in &entries.pairs {
            offsets[*g as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut next = offsets.clone();
        let mut by_group = vec![0u32; entries.pairs.len()];
        for (g, b) in &entries.pairs {
            let slot = &mut next[*g as usize];
            by_group[*slot as usize] = *b;
            *slot += 1;
        }
        let lists = Lists {
            offsets,
            entries: by_group,
            in_rows: match entries.with_orders {
                true => entries.pairs,
                false => Vec::new(),
            },
        };
        // Bitsets over buyers stay in cache where a stamp per buyer would not; each
        // group's bits are cleared by its own entries. With many entries, one thread
        // counts the total and the first groups, another the rest: the total reads
        // every entry once, a group's entries are read twice (marked, cleared), so the
        // split is at a quarter of the entries.
        let wants = self.wants;
        let groups = |range: std::ops::Range<usize>, tally: &mut Tally| -> Vec<BuyerCounts> {
            range
                .map(|g| {
                    let group = lists.group(g);
                    let counts = tally.count(group);
                    tally.clear(group);
                    counts
                })
                .collect()
        };
        let total = |tally: &mut Tally| match lists.in_rows.is_empty() {
            true => tally.count(&lists.entries),
            false => tally.count_orders(&lists.in_rows, |_| true),
        };
        let n = lists.entries.len();
        let (out, total) = if n < PARALLEL_FROM.load(std::sync::atomic::Ordering::Relaxed) {
            let mut tally = Tally::new(nbuyers, wants);
            (groups(0..self.groups, &mut tally), total(&mut tally))
        } else {
            let split = lists
                .offsets
                .partition_point(|o| (*o as usize) < n / 4)
                .min(self.groups);
            std::thread::scope(|scope| {
                let later =
                    scope.spawn(|| groups(split..self.groups, &mut Tally::new(nbuyers, wants)));
                let mut tally = Tally::new(nbuyers, wants);
                let mut out = groups(0..split, &mut tally);
                let total = total(&mut tally);
                out.extend(later.join().expect("buyer count worker"));
                (out, total)
            })
        };
        (out, total, Some(BuyerSets::Lists(lists)))
    }

    fn rows(mut self, q: &Aggregate) -> AppResult<Vec<GroupRow>> {
        let (buyers, total_buyers) = self.buyers();
        let scale = self.scale;
        let mut total = Acc::default();
        for a in &self.accs {
            total.add(a);
        }
        let total_row = GroupRow {
            bucket: 0,
            key: None,
            measures: total.measures(scale, total_buyers),
        };
        let present = |a: &Acc| a.orders > 0;
        Ok(match &q.grouping {
            Grouping::Total => vec![total_row],
            Grouping::Buckets { .. } => self
                .accs
                .iter()
                .enumerate()
                .filter(|(_, a)| present(a))
                .map(|(i, a)| GroupRow {
                    bucket: i as i32 + 1,
                    key: None,
                    measures: a.measures(scale, buyers[i]),
                })
                .collect(),
            Grouping::Dimension {
                keep: Some(keep), ..
            } => self
                .accs
                .iter()
                .enumerate()
                .filter(|(_, a)| present(a))
                .map(|(i, a)| GroupRow {
                    bucket: 0,
                    key: Some(
                        keep.get(i)
                            .cloned()
                            .unwrap_or_else(|| OTHER_KEY.to_string()),
                    ),
                    measures: a.measures(scale, buyers[i]),
                })
                .collect(),
            Grouping::Dimension { keep: None, .. } => {
                let mut rows: Vec<GroupRow> = self
                    .accs
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| present(a))
                    .map(|(i, a)| GroupRow {
                        bucket: 0,
                        key: Some(key_name(self.store, self.key, i as u32)),
                        measures: a.measures(scale, buyers[i]),
                    })
                    .collect();
                rows.push(total_row);
                rows
            }
        })
    }
}

/// Per (local day, currency) factors at one common scale.
fn day_factors(
    rates: &Rates,
    currencies: &[&str],
    report: &str,
    first: NaiveDate,
    last: NaiveDate,
) -> AppResult<(Vec<i128>, u32)> {
    let mut found = Vec::new();
    let mut day = first;
    loop {
        for c in currencies {
            let factor = rates.factor(day, c, report).ok_or_else(|| {
                AppError::Unavailable(format!("no exchange rate for {c} or {report} on {day}"))
            })?;
            found.push(factor);
        }
        if day >= last {
            break;
        }
        day = day.succ_opt().expect("a date within the calendar");
    }
    let scale = found.iter().map(|f| f.scale).max().unwrap_or(0);
    let factors = found
        .iter()
        .map(|f| {
            f.at_scale(scale)
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("exchange factor out of range")))
        })
        .collect::<AppResult<Vec<i128>>>()?;
    Ok((factors, scale))
}

fn key_index(store: &Store, key: Key, name: &str) -> Option<u32> {
    let id = || name.parse::<i64>().ok();
    match key {
        Key::Bucket => None,
        Key::Shop => store.shops.get(id()?),
        Key::Platform => store.platforms.get(name),
        Key::Province => store.provinces.get(name),
        Key::Region => store.regions.get(name),
        Key::Channel => store.channels.get(name),
        Key::Creator if name.is_empty() => Some(0),
        Key::Creator => store.creators.get(id()?),
        Key::PaymentMethod => store.payments.get(name),
        Key::Status => store.statuses.get(name),
        Key::Carrier => store.carriers.get(name),
        Key::Product if name.is_empty() => Some(0),
        Key::Product => store.products.get(id()?),
        Key::Category => store.categories.get(name),
    }
}

fn key_name(store: &Store, key: Key, i: u32) -> String {
    let text = |d: &super::store::Dict| d.names[i as usize].clone();
    match key {
        Key::Bucket => String::new(),
        Key::Shop => store.shops.key(i),
        Key::Platform => text(&store.platforms),
        Key::Province => text(&store.provinces),
        Key::Region => text(&store.regions),
        Key::Channel => text(&store.channels),
        Key::Creator => store.creators.key(i),
        Key::PaymentMethod => text(&store.payments),
        Key::Status => text(&store.statuses),
        Key::Carrier => text(&store.carriers),
        Key::Product => store.products.key(i),
        Key::Category => text(&store.categories),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::HashMap;

    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;
    use crate::analytics::store::{ItemFacts, OrderFacts, ShopFacts};
    use crate::analytics::{Columns, Filters};

    thread_local! {
        /// Counts buyers from (group, buyer) entries even where group marks fit.
        pub(super) static ENTRIES_ONLY: Cell<bool> = const { Cell::new(false) };
    }

    /// A store of random orders: 3 shops, 40 buyers (so that buyers repeat and meet
    /// several keys), statuses, channels, provinces and payment methods.
    fn store() -> Store {
        let mut store = Store::new(HashMap::new());
        for id in 1..=3 {
            store.set_shop(&ShopFacts {
                id,
                platform: if id == 3 {
                    "JD".into()
                } else {
                    "DOUYIN".into()
                },
                currency: "CNY".into(),
            });
        }
        for id in 1..=8 {
            store.set_product(id, ["服装", "美妆", "食品"][id as usize % 3]);
        }
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let start = Utc
            .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        let orders: Vec<OrderFacts> = (1..=3_000)
            .map(|id| {
                let paid = next(5) > 0;
                OrderFacts {
                    id,
                    shop_id: 1 + next(3) as i64,
                    placed_at: start + next(20 * 86_400) as i64,
                    paid,
                    status: ["COMPLETED", "SHIPPED", "AWAITING_SHIPMENT", "CANCELLED"]
                        [next(4) as usize]
                        .into(),
                    channel: ["LIVE", "SHORT_VIDEO", "SHELF"][next(3) as usize].into(),
                    carrier: None,
                    payment_method: Some(["ALIPAY", "WECHAT_PAY"][next(2) as usize].into()),
                    province: Some(["11", "31", "44", "51"][next(4) as usize].into()),
                    creator_id: None,
                    buyer: format!("b{}", next(40)),
                    paid_amount: 1_000 + next(9_000) as i64,
                    commission: 0,
                    delivery_us: None,
                    refunded: false,
                    refund_amount: 0,
                    disputed: false,
                    items: (0..1 + next(3))
                        .map(|_| ItemFacts {
                            product_id: Some(1 + next(8) as i64),
                            quantity: 1,
                            paid_amount: 1_000,
                        })
                        .collect(),
                    since_us: None,
                    refund_pending: false,
                    dispute_open: false,
                }
            })
            .collect();
        store.reserve_ids(1, 3_000);
        store.load(&orders);
        store.finish_load();
        store
    }

    fn breakdown(dimension: Dimension, day_from: u32, day_to: u32, filters: Filters) -> Aggregate {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let at = |d| Utc.from_utc_datetime(&day(d).and_hms_opt(0, 0, 0).unwrap());
        Aggregate {
            filters,
            start: at(day_from),
            end: at(day_to + 1),
            first_day: day(day_from),
            last_day: day(day_to),
            timezone: "UTC".into(),
            currency: "CNY".into(),
            grouping: Grouping::Dimension {
                dimension,
                keep: None,
            },
            needs_buyers: true,
            needs_repeat: true,
            needs_new: true,
            columns: Columns::ALL,
        }
    }

    /// Group marks and (group, buyer) entries count the same distinct, repeat and new
    /// buyers in every group, in "other" and in the total.
    #[test]
    fn group_marks_count_what_entries_count() {
        let store = store();
        let rates = Rates::default();
        set_parallel_from(100);
        let all = Filters {
            shop_ids: vec![1, 2, 3],
            ..Filters::default()
        };
        let some = Filters {
            shop_ids: vec![1, 3],
            channels: Some(vec!["LIVE".into(), "SHELF".into()]),
            ..Filters::default()
        };
        for dimension in [
            Dimension::Province,
            Dimension::Channel,
            Dimension::Status,
            Dimension::Shop,
            Dimension::Platform,
            Dimension::PaymentMethod,
            Dimension::Category,
            Dimension::Product,
        ] {
            for (from, to, filters) in [(1, 20, &all), (3, 9, &some), (5, 5, &all)] {
                let q = breakdown(dimension, from, to, filters.clone());
                let marks = grouped(&store, &rates, &q).unwrap();
                assert!(matches!(marks.sets, BuyerSets::Marks(_)), "{dimension:?}");
                ENTRIES_ONLY.with(|e| e.set(true));
                let entries = grouped(&store, &rates, &q).unwrap();
                ENTRIES_ONLY.with(|e| e.set(false));
                assert!(matches!(entries.sets, BuyerSets::Lists(_)));
                let label = format!("{dimension:?} {from}..{to}");
                assert_eq!(marks.rows(), entries.rows(), "{label}");
                assert_eq!(marks.total(), entries.total(), "{label}");
                assert!(
                    marks.total().buyers > 0 && marks.total().repeat_buyers > 0,
                    "{label}"
                );
                let keys: Vec<String> = marks.rows().into_iter().map(|r| r.0).collect();
                let n = keys.len();
                for kept in [&keys[..0], &keys[..1], &keys[..n / 2], &keys[..n - 1]] {
                    assert_eq!(
                        marks.fold(kept).unwrap(),
                        entries.fold(kept).unwrap(),
                        "{label} {kept:?}"
                    );
                }
            }
        }
    }
}
