// Small building blocks shared by the pages: routing, polling, badges.
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { DeliveryStatus } from "./gen/hookmesh/status/v1/status_pb";
import { EndpointStatus } from "./gen/hookmesh/registry/v1/registry_pb";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { errorText, PORTAL, type Session } from "./api";

// BASE is where the application's routes live: the portal's under
// /ui/portal, so that a reload stays in portal mode.
export const BASE = PORTAL ? "/ui/portal" : "/ui";

// ---------------------------------------------------------------- routing

interface Nav {
  path: string;
  navigate: (to: string) => void;
}

export const NavContext = createContext<Nav>({ path: "/", navigate: () => {} });

export function useNav() {
  return useContext(NavContext);
}

export function useRouter(): Nav {
  const strip = (p: string) => (p.startsWith(BASE) ? p.slice(BASE.length) || "/" : p);
  const [path, setPath] = useState(strip(window.location.pathname));
  useEffect(() => {
    const onPop = () => setPath(strip(window.location.pathname));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const navigate = useCallback((to: string) => {
    window.history.pushState(null, "", BASE + to);
    setPath(to);
    window.scrollTo(0, 0);
  }, []);
  return { path, navigate };
}

export function Link(props: { to: string; children: ReactNode; className?: string; testid?: string }) {
  const { navigate } = useNav();
  return (
    <a
      href={BASE + props.to}
      className={props.className}
      data-testid={props.testid}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}

// ---------------------------------------------------------------- session

interface SessionCtx {
  session: Session;
  setProject: (projectId: string) => void;
}

export const SessionContext = createContext<SessionCtx>({
  session: { key: "", admin: false, projectId: "" },
  setProject: () => {},
});

export function useSession() {
  return useContext(SessionContext);
}

// ---------------------------------------------------------------- polling

export const POLL_MS = 1500;

// usePoll calls load now and then every POLL_MS while the page is open (and
// again whenever deps change or reload is called), keeping the last answer
// on screen between calls.
export function usePoll<T>(load: () => Promise<T>, deps: unknown[], enabled = true) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string>("");
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const v = await loadRef.current();
        if (stopped) return;
        setData(v);
        setError("");
      } catch (e) {
        if (stopped) return;
        setError(errorText(e));
      }
      if (!stopped) timer = setTimeout(run, POLL_MS);
    };
    run();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick, enabled]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, reload, setData };
}

// useCursor keeps the page tokens seen so far, for next and previous.
export function useCursor(resetDeps: unknown[]) {
  const [tokens, setTokens] = useState<string[]>([""]);
  useEffect(() => setTokens([""]), resetDeps); // eslint-disable-line react-hooks/exhaustive-deps
  const token = tokens[tokens.length - 1];
  return {
    token,
    page: tokens.length,
    next: (t: string) => setTokens((ts) => [...ts, t]),
    prev: () => setTokens((ts) => (ts.length > 1 ? ts.slice(0, -1) : ts)),
    first: () => setTokens([""]),
  };
}

export function Pager(props: { page: number; nextToken?: string; onNext: (t: string) => void; onPrev: () => void; testid: string }) {
  return (
    <div className="pager" data-testid={props.testid}>
      <button disabled={props.page <= 1} onClick={props.onPrev} data-testid={`${props.testid}-prev`}>
        ← Previous
      </button>
      <span>page {props.page}</span>
      <button
        disabled={!props.nextToken}
        onClick={() => props.nextToken && props.onNext(props.nextToken)}
        data-testid={`${props.testid}-next`}
      >
        Next →
      </button>
    </div>
  );
}

// ---------------------------------------------------------------- display

export function deliveryStatusName(s: DeliveryStatus): string {
  return DeliveryStatus[s] ?? "UNSPECIFIED";
}

export function DeliveryBadge(props: { status: DeliveryStatus; testid?: string }) {
  const name = deliveryStatusName(props.status);
  return (
    <span className={`badge badge-${name}`} data-testid={props.testid} data-status={name}>
      {name}
    </span>
  );
}

export function EndpointBadge(props: { status: EndpointStatus; testid?: string }) {
  const name = EndpointStatus[props.status] ?? "UNSPECIFIED";
  return (
    <span className={`badge badge-ep-${name}`} data-testid={props.testid} data-status={name}>
      {name}
    </span>
  );
}

export function ErrorBox(props: { error?: string; testid?: string }) {
  if (!props.error) return null;
  return (
    <div className="error" role="alert" data-testid={props.testid}>
      {props.error}
    </div>
  );
}

export function Secret(props: { label: string; value: string; testid: string; onClose: () => void }) {
  return (
    <div className="secret">
      <div>
        <strong>{props.label}</strong> — shown only now; copy it somewhere safe.
      </div>
      <code data-testid={props.testid}>{props.value}</code>
      <button onClick={() => navigator.clipboard?.writeText(props.value)}>Copy</button>
      <button onClick={props.onClose}>Done</button>
    </div>
  );
}

export function Json(props: { text: string; testid?: string }) {
  let shown = props.text;
  try {
    if (shown.trim() !== "") shown = JSON.stringify(JSON.parse(shown), null, 2);
  } catch {
    // not JSON: show as it is
  }
  return (
    <pre className="json" data-testid={props.testid}>
      {shown}
    </pre>
  );
}

export function Headers(props: { headers: Record<string, string>; testid?: string }) {
  const keys = Object.keys(props.headers).sort();
  if (keys.length === 0) return <div className="muted">none</div>;
  return (
    <pre className="json" data-testid={props.testid}>
      {keys.map((k) => `${k}: ${props.headers[k]}`).join("\n")}
    </pre>
  );
}

export function NeedProject() {
  return (
    <div className="empty" data-testid="need-project">
      Choose a project on the <Link to="/projects">Projects</Link> page first.
    </div>
  );
}

// toTimestampInit turns a datetime-local input into a Timestamp init.
export function tsFromInput(v: string): Timestamp | undefined {
  if (!v) return undefined;
  const ms = new Date(v).getTime();
  if (Number.isNaN(ms)) return undefined;
  return timestampFromMs(ms);
}
