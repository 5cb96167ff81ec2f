import { useEffect, useState, type FormEvent } from "react";
import { Code, ConnectError } from "@connectrpc/connect";
import { clearPortalToken, clearSession, clientsWithKey, errorText, fmtTime, loadSession, PORTAL, registry, saveSession, takePortalToken, type Session } from "./api";
import { Link, NavContext, SessionContext, useRouter, ErrorBox } from "./lib";
import { ProjectsPage } from "./pages/projects";
import { MetaEventsPage } from "./pages/meta";
import { EndpointPage, EndpointsPage } from "./pages/endpoints";
import { SubscriptionsPage } from "./pages/subscriptions";
import { EventPage, EventsPage } from "./pages/events";
import { DeliveriesPage } from "./pages/deliveries";
import { KeysPage } from "./pages/keys";
import { SourcesPage } from "./pages/sources";
import { ParkingPage } from "./pages/parking";
import { MetricsPage } from "./pages/metrics";

export function App() {
  return PORTAL ? <PortalApp /> : <ConsoleApp />;
}

function ConsoleApp() {
  const [session, setSession] = useState<Session | null>(loadSession());
  const nav = useRouter();
  if (!session) {
    return (
      <SignIn
        onSignedIn={(s) => {
          saveSession(s);
          setSession(s);
          nav.navigate(s.projectId ? "/endpoints" : "/projects");
        }}
      />
    );
  }
  const setProject = (projectId: string) => {
    const s = { ...session, projectId };
    saveSession(s);
    setSession(s);
  };
  const signOut = () => {
    clearSession();
    setSession(null);
  };
  return (
    <NavContext.Provider value={nav}>
      <SessionContext.Provider value={{ session, setProject }}>
        <div className="layout">
          <Sidebar session={session} path={nav.path} onSignOut={signOut} />
          <main className="main">
            <Route path={nav.path} session={session} />
          </main>
        </div>
      </SessionContext.Provider>
    </NavContext.Provider>
  );
}

function Route(props: { path: string; session: Session }) {
  const parts = props.path.split("/").filter(Boolean);
  const [page, id] = parts;
  if (props.session.portal) {
    // The portal reaches its owner's endpoints and their deliveries only.
    switch (page) {
      case "endpoints":
        return id ? <EndpointPage id={decodeURIComponent(id)} /> : <EndpointsPage />;
      case "deliveries":
        return <DeliveriesPage />;
      case "metrics":
        return <MetricsPage />;
      default:
        return <EndpointsPage />;
    }
  }
  switch (page) {
    case "projects":
      return <ProjectsPage />;
    case "endpoints":
      return id ? <EndpointPage id={decodeURIComponent(id)} /> : <EndpointsPage />;
    case "subscriptions":
      return <SubscriptionsPage />;
    case "events":
      return id ? <EventPage id={decodeURIComponent(id)} /> : <EventsPage />;
    case "deliveries":
      return <DeliveriesPage />;
    case "keys":
      return <KeysPage />;
    case "meta-events":
      return <MetaEventsPage />;
    case "sources":
      return <SourcesPage />;
    case "parking":
      return <ParkingPage />;
    case "metrics":
      return <MetricsPage />;
    default:
      return props.session.projectId ? <EndpointsPage /> : props.session.admin ? <ProjectsPage /> : <EndpointsPage />;
  }
}

function Sidebar(props: { session: Session; path: string; onSignOut: () => void }) {
  const item = (to: string, label: string) => (
    <li>
      <Link to={to} testid={`nav-${to.slice(1)}`} className={props.path.startsWith(to) ? "active" : ""}>
        {label}
      </Link>
    </li>
  );
  return (
    <nav className="sidebar">
      <div className="sidebar-inner">
      <div className="brand">hookmesh</div>
      <div className="who" data-testid="who">
        {props.session.admin ? "admin" : "project key"}
        <div className="project" data-testid="current-project">
          {props.session.projectId || "no project chosen"}
        </div>
      </div>
      <ul>
        {props.session.admin && item("/projects", "Projects")}
        {item("/endpoints", "Endpoints")}
        {item("/subscriptions", "Subscriptions")}
        {item("/events", "Events")}
        {item("/deliveries", "Deliveries")}
        {item("/metrics", "Metrics")}
        {item("/sources", "Sources")}
        {item("/keys", "API keys")}
        {item("/meta-events", "Meta events")}
        {props.session.admin && item("/parking", "Parking")}
      </ul>
      <button className="signout" onClick={props.onSignOut} data-testid="signout">
        Sign out
      </button>
      </div>
    </nav>
  );
}

// PortalApp is the customer portal: the dashboard reduced to one owner's
// endpoints and deliveries, signed in by the portal link's token.
function PortalApp() {
  const nav = useRouter();
  const [token] = useState(takePortalToken);
  const [session, setSession] = useState<Session | null>(null);
  const [expired, setExpired] = useState(!token);
  const [error, setError] = useState("");
  useEffect(() => {
    if (!token) return;
    let stopped = false;
    // Learn the project and owner now, and check the link again now and
    // then, so that an expired or revoked link says so.
    const check = async () => {
      try {
        const resp = await registry.getCurrentPortalLink({});
        const link = resp.portalLink;
        if (stopped || !link) return;
        setError("");
        setSession((s) =>
          s && s.projectId === link.projectId && s.portal?.ownerId === link.ownerId
            ? s
            : { key: token, admin: false, projectId: link.projectId, portal: { ownerId: link.ownerId, expireTime: link.expireTime } },
        );
      } catch (err) {
        if (stopped) return;
        if (err instanceof ConnectError && (err.code === Code.Unauthenticated || err.code === Code.PermissionDenied)) {
          clearPortalToken();
          setExpired(true);
        } else {
          setError(errorText(err));
        }
      }
    };
    check();
    const timer = setInterval(check, 15000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [token]);
  if (expired) {
    return (
      <div className="signin">
        <div className="card" data-testid="portal-expired">
          <h1>hookmesh</h1>
          <p>{token ? "This portal link has expired or was revoked." : "This portal link is missing its token."}</p>
          <p className="muted">Ask for a new link.</p>
        </div>
      </div>
    );
  }
  if (!session) {
    return (
      <div className="signin">
        <div className="card" data-testid="portal-loading">
          <h1>hookmesh</h1>
          {error ? <ErrorBox error={error} testid="portal-error" /> : <p className="muted">Opening the portal…</p>}
        </div>
      </div>
    );
  }
  const item = (to: string, label: string) => (
    <li>
      <Link to={to} testid={`nav-${to.slice(1)}`} className={nav.path.startsWith(to) ? "active" : ""}>
        {label}
      </Link>
    </li>
  );
  return (
    <NavContext.Provider value={nav}>
      <SessionContext.Provider value={{ session, setProject: () => {} }}>
        <div className="layout">
          <nav className="sidebar">
            <div className="sidebar-inner">
              <div className="brand">hookmesh</div>
              <div className="who">
                customer portal
                <div className="project">{session.portal?.ownerId}</div>
              </div>
              <ul>
                {item("/endpoints", "Endpoints")}
                {item("/deliveries", "Deliveries")}
                {item("/metrics", "Metrics")}
              </ul>
            </div>
          </nav>
          <main className="main">
            <header className="portal-header" data-testid="portal-header">
              <strong data-testid="portal-owner">Portal for {session.portal?.ownerId}</strong>
              <span className="muted" data-testid="portal-expires">
                This link expires {fmtTime(session.portal?.expireTime)}
              </span>
            </header>
            <ErrorBox error={error} testid="portal-error" />
            <Route path={nav.path} session={session} />
          </main>
        </div>
      </SessionContext.Provider>
    </NavContext.Provider>
  );
}

function SignIn(props: { onSignedIn: (s: Session) => void }) {
  const [key, setKey] = useState("");
  const [projectId, setProjectId] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError("");
    const k = key.trim();
    const p = projectId.trim();
    if (!k) {
      setError("Enter an API key.");
      return;
    }
    setBusy(true);
    const { registry } = clientsWithKey(k);
    try {
      // The admin key may list projects; a project key may not.
      try {
        await registry.listProjects({ pageSize: 1 });
        if (p) await registry.getProject({ projectId: p });
        props.onSignedIn({ key: k, admin: true, projectId: p });
        return;
      } catch (err) {
        if (!(err instanceof ConnectError) || err.code !== Code.PermissionDenied) throw err;
      }
      if (!p) {
        setError("This is a project API key: enter its project ID too.");
        return;
      }
      await registry.getProject({ projectId: p });
      props.onSignedIn({ key: k, admin: false, projectId: p });
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="signin">
      <form onSubmit={submit} className="card">
        <h1>hookmesh</h1>
        <p className="muted">Sign in with the admin key, or with a project API key and its project ID. The key is kept in this tab only.</p>
        <label>
          API key
          <input type="password" value={key} onChange={(e) => setKey(e.target.value)} data-testid="signin-key" autoFocus />
        </label>
        <label>
          Project ID <span className="muted">(optional with the admin key)</span>
          <input value={projectId} onChange={(e) => setProjectId(e.target.value)} data-testid="signin-project" />
        </label>
        <ErrorBox error={error} testid="signin-error" />
        <button type="submit" className="primary" disabled={busy} data-testid="signin-submit">
          Sign in
        </button>
      </form>
    </div>
  );
}
