// Plain SVG charts of GetDeliveryStats' buckets: deliveries per outcome
// status as stacked bars, and attempt latency percentiles as lines.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { DeliveryStatus, type StatsBucket } from "../gen/hookmesh/status/v1/status_pb";
import { deliveryStatusName } from "../lib";

// The statuses the statistics count, bottom of the stack first, and their
// colours (those of the badges).
export const OUTCOMES: { status: DeliveryStatus; color: string }[] = [
  { status: DeliveryStatus.SUCCESS, color: "#37b24d" },
  { status: DeliveryStatus.RETRY, color: "#f08c00" },
  { status: DeliveryStatus.FAILED, color: "#e03131" },
  { status: DeliveryStatus.DISCARDED, color: "#868e96" },
];

const LATENCIES: { key: "latencyP50Ms" | "latencyP95Ms" | "latencyP99Ms"; label: string; color: string }[] = [
  { key: "latencyP50Ms", label: "p50", color: "#3b5bdb" },
  { key: "latencyP95Ms", label: "p95", color: "#ae3ec9" },
  { key: "latencyP99Ms", label: "p99", color: "#e8590c" },
];

const W = 760;
const H = 220;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };
const plotW = W - PAD.left - PAD.right;
const plotH = H - PAD.top - PAD.bottom;

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function timeLabel(b: StatsBucket, spanMs: number): string {
  if (!b.startTime) return "";
  const d = timestampDate(b.startTime);
  if (spanMs > 2 * 24 * 3600e3) return d.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " + d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

// Axes draws the y scale (0, half, max) and a few time labels under the
// buckets.
function Axes(props: { buckets: StatsBucket[]; max: number; unit: string }) {
  const { buckets, max } = props;
  const n = buckets.length;
  const span = n > 1 && buckets[0].startTime && buckets[n - 1].startTime
    ? timestampDate(buckets[n - 1].startTime!).getTime() - timestampDate(buckets[0].startTime!).getTime()
    : 0;
  const ticks = n <= 1 ? [0] : [0, Math.floor((n - 1) / 2), n - 1];
  return (
    <g className="axes" fontSize="11" fill="#6b7385">
      {[0, 0.5, 1].map((f) => {
        const y = PAD.top + plotH * (1 - f);
        return (
          <g key={f}>
            <line x1={PAD.left} x2={W - PAD.right} y1={y} y2={y} stroke="#e3e6ec" />
            <text x={PAD.left - 6} y={y + 4} textAnchor="end">
              {Number.isInteger(max * f) ? max * f : (max * f).toFixed(1)}
              {f === 1 ? props.unit : ""}
            </text>
          </g>
        );
      })}
      {ticks.map((i) => (
        <text key={i} x={PAD.left + (plotW * (i + 0.5)) / Math.max(n, 1)} y={H - 8} textAnchor="middle">
          {buckets[i] ? timeLabel(buckets[i], span) : ""}
        </text>
      ))}
    </g>
  );
}

function count(b: StatsBucket, st: DeliveryStatus): number {
  return Number(b.statuses.find((c) => c.status === st)?.count ?? 0n);
}

// StatusChart stacks, for each bucket, the deliveries that reached each
// outcome status.
export function StatusChart(props: { buckets: StatsBucket[]; testid: string }) {
  const { buckets } = props;
  const totals = buckets.map((b) => OUTCOMES.reduce((n, o) => n + count(b, o.status), 0));
  const max = niceMax(Math.max(0, ...totals));
  const n = Math.max(buckets.length, 1);
  const slot = plotW / n;
  const barW = Math.max(1, Math.min(slot * 0.8, 60));
  const empty = totals.every((t) => t === 0);
  return (
    <figure className="chart" data-testid={props.testid}>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" role="img" aria-label="Deliveries per status over time">
        <Axes buckets={buckets} max={max} unit="" />
        {buckets.map((b, i) => {
          let y = PAD.top + plotH;
          const x = PAD.left + slot * i + (slot - barW) / 2;
          return (
            <g key={i}>
              {OUTCOMES.map((o) => {
                const c = count(b, o.status);
                if (c === 0) return null;
                const h = (plotH * c) / max;
                y -= h;
                return (
                  <rect key={o.status} className="bar" data-status={deliveryStatusName(o.status)} data-count={c}
                    x={x} y={y} width={barW} height={Math.max(h, 1)} fill={o.color}>
                    <title>{`${timeLabel(b, 0)} ${deliveryStatusName(o.status)}: ${c}`}</title>
                  </rect>
                );
              })}
            </g>
          );
        })}
        {empty && (
          <text x={PAD.left + plotW / 2} y={PAD.top + plotH / 2} textAnchor="middle" fill="#6b7385" data-testid={`${props.testid}-empty`}>
            No deliveries reached an outcome in this window
          </text>
        )}
      </svg>
      <figcaption className="legend">
        {OUTCOMES.map((o) => (
          <span key={o.status}>
            <i style={{ background: o.color }} /> {deliveryStatusName(o.status)} {buckets.reduce((n, b) => n + count(b, o.status), 0)}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

// LatencyChart draws the p50, p95 and p99 of each bucket that had
// attempts: lines between them, and a dot on each (a single bucket is a
// dot).
export function LatencyChart(props: { buckets: StatsBucket[]; testid: string }) {
  const { buckets } = props;
  const withAttempts = buckets.map((b, i) => ({ b, i })).filter((p) => p.b.attempts > 0n);
  const max = niceMax(Math.max(0, ...withAttempts.map((p) => p.b.latencyP99Ms)));
  const n = Math.max(buckets.length, 1);
  const x = (i: number) => PAD.left + (plotW * (i + 0.5)) / n;
  const y = (v: number) => PAD.top + plotH * (1 - v / max);
  const attempts = buckets.reduce((s, b) => s + Number(b.attempts), 0);
  const mean = attempts === 0 ? 0 : Math.round(buckets.reduce((s, b) => s + b.latencyMeanMs * Number(b.attempts), 0) / attempts);
  return (
    <figure className="chart" data-testid={props.testid}>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" role="img" aria-label="Attempt latency over time">
        <Axes buckets={buckets} max={max} unit=" ms" />
        {LATENCIES.map((l) => (
          <g key={l.key} data-series={l.label}>
            {withAttempts.length > 1 && (
              <polyline fill="none" stroke={l.color} strokeWidth="2"
                points={withAttempts.map((p) => `${x(p.i)},${y(p.b[l.key])}`).join(" ")} />
            )}
            {withAttempts.map((p) => (
              <circle key={p.i} className="point" cx={x(p.i)} cy={y(p.b[l.key])} r="3" fill={l.color}>
                <title>{`${timeLabel(p.b, 0)} ${l.label}: ${p.b[l.key]} ms (${p.b.attempts} attempts)`}</title>
              </circle>
            ))}
          </g>
        ))}
        {withAttempts.length === 0 && (
          <text x={PAD.left + plotW / 2} y={PAD.top + plotH / 2} textAnchor="middle" fill="#6b7385" data-testid={`${props.testid}-empty`}>
            No attempts in this window
          </text>
        )}
      </svg>
      <figcaption className="legend">
        {LATENCIES.map((l) => (
          <span key={l.key}>
            <i style={{ background: l.color }} /> {l.label}
          </span>
        ))}
        <span className="muted">
          {attempts} attempts, mean {mean} ms
        </span>
      </figcaption>
    </figure>
  );
}
