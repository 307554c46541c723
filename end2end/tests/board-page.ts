import { expect, type APIRequestContext, type Locator, type Page, type Request } from "@playwright/test";

export type Status = "todo" | "doing" | "done";

/** The board page, as a user sees it. */
export class BoardPage {
  readonly app: Locator;
  readonly title: Locator;
  readonly description: Locator;
  readonly status: Locator;
  readonly submit: Locator;
  readonly formError: Locator;
  readonly toasts: Locator;
  readonly assignee: Locator;
  readonly username: Locator;
  readonly password: Locator;
  readonly signInButton: Locator;
  readonly signUpButton: Locator;
  readonly signInError: Locator;
  readonly signedInAs: Locator;
  readonly signOutButton: Locator;

  constructor(readonly page: Page) {
    this.app = page.getByTestId("app");
    this.title = page.getByTestId("new-title");
    this.description = page.getByTestId("new-description");
    this.status = page.getByTestId("new-status");
    this.submit = page.getByTestId("create-task");
    this.formError = page.getByTestId("form-error");
    this.toasts = page.getByTestId("toast");
    this.assignee = page.getByTestId("new-assignee");
    this.username = page.getByTestId("signin-username");
    this.password = page.getByTestId("signin-password");
    this.signInButton = page.getByTestId("signin-submit");
    this.signUpButton = page.getByTestId("signup-submit");
    this.signInError = page.getByTestId("signin-error");
    this.signedInAs = page.getByTestId("signed-in-as");
    this.signOutButton = page.getByTestId("signout");
  }

  /** Signs in through the header form (the page must be hydrated). */
  async signIn(user: User) {
    await this.username.fill(user.username);
    await this.password.fill(user.password);
    await this.signInButton.click();
    await expect(this.signedInAs).toContainText(user.username);
  }

  /** Opens the board, waits for it to hydrate and signs in. */
  async gotoSignedIn(user: User) {
    await this.goto();
    await this.waitForHydration();
    await this.signIn(user);
  }

  async goto() {
    await this.page.goto("/");
  }

  /** Server-rendered markup is visible before the WASM handlers exist. */
  async waitForHydration() {
    await expect(this.app).toHaveAttribute("data-hydrated", "true", { timeout: 15_000 });
  }

  column(status: Status): Locator {
    return this.page.getByTestId(`column-${status}`);
  }

  card(title: string): Locator {
    return this.page.getByTestId("task").filter({
      has: this.page.getByTestId("task-title").getByText(title, { exact: true }),
    });
  }

  async createTask(title: string, description = "", status: Status = "todo", assignee = "") {
    await this.title.fill(title);
    await this.description.fill(description);
    await this.status.selectOption(status);
    await this.assignee.fill(assignee);
    await this.submit.click();
  }
}

/**
 * Every request the page sends, from now on, with one of `methods` to a
 * path matching `path`. The UI alone cannot tell a form refused by the page
 * from one refused by the server, nor a disabled button from one whose
 * write went unnoticed; this is how a test sees what left the page.
 */
export class RequestLog {
  readonly requests: Request[] = [];

  constructor(
    readonly page: Page,
    readonly methods: readonly string[],
    readonly path: RegExp,
  ) {
    page.on("request", (r) => {
      if (methods.includes(r.method()) && path.test(new URL(r.url()).pathname)) this.requests.push(r);
    });
  }

  /** Method, path and body of each request, for readable assertions. */
  sent(): string[] {
    return this.requests.map((r) => `${this.target(r)} ${r.postData() ?? ""}`.trim());
  }

  /** Method and path of each request. */
  targets(): string[] {
    return this.requests.map((r) => this.target(r));
  }

  private target(r: Request): string {
    return `${r.method()} ${new URL(r.url()).pathname}`;
  }

  /**
   * Sends one request from the page (`GET /healthz`) and waits for its
   * answer. A request the page started before (from a click, say) has been
   * reported by then, so what `sent()` says afterwards holds for everything
   * done before this call.
   */
  async settle() {
    const status = await this.page.evaluate(() =>
      fetch("/healthz", { cache: "no-store" }).then((r) => r.status),
    );
    expect(status).toBe(200);
  }
}

/** Task writes: `POST /tasks`, `PATCH` and `DELETE /tasks/{id}`. */
export function taskWrites(page: Page): RequestLog {
  return new RequestLog(page, ["POST", "PUT", "PATCH", "DELETE"], /^\/tasks(\/|$)/);
}

/** Every task the server has stored, through the API, page by page. */
export async function storedTasks(request: APIRequestContext): Promise<{ id: number; title: string; status: Status }[]> {
  const all = [];
  let url: string | undefined = "/tasks";
  while (url) {
    const resp = await request.get(url);
    expect(resp.status()).toBe(200);
    all.push(...(await resp.json()));
    url = resp.headers()["link"]?.match(/^<([^>]+)>; rel="next"$/)?.[1];
  }
  return all;
}

/** An account and, once signed in through the API, its bearer token. */
export interface User {
  username: string;
  password: string;
  token?: string;
}

/** A fresh account name: lowercase, starts with a letter, at most 32 characters. */
export function uniqueUsername(prefix = "u"): string {
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  return `${prefix}-${suffix}`.toLowerCase().slice(0, 32);
}

/**
 * Registers a fresh account through the API and signs it in (so it has a
 * token). The name is `prefix` plus a unique suffix, or exactly `prefix`
 * with `exact` (only on a fresh database).
 */
export async function registerUser(request: APIRequestContext, prefix = "u", exact = false): Promise<User> {
  const username = exact ? prefix : uniqueUsername(prefix);
  const user: User = { username, password: "correct horse battery" };
  const resp = await request.post("/auth/register", {
    data: { username: user.username, password: user.password },
  });
  expect(resp.status(), await resp.text()).toBe(201);
  user.token = await tokenFor(request, user);
  return user;
}

/** `POST /token` (the OAuth2 password grant, form-encoded). */
export async function tokenFor(request: APIRequestContext, user: User): Promise<string> {
  const resp = await request.post("/token", {
    form: { username: user.username, password: user.password },
  });
  expect(resp.status(), await resp.text()).toBe(200);
  return (await resp.json()).access_token;
}

/** The header that task writes need. */
export function authHeader(user: User): Record<string, string> {
  if (!user.token) throw new Error(`${user.username} has no token`);
  return { Authorization: `Bearer ${user.token}` };
}

/** Creates a task through the REST API as `user`, as another client would. */
export async function createViaApi(
  request: APIRequestContext,
  user: User,
  title: string,
  description = "",
  assignee?: string,
) {
  const resp = await request.post("/tasks", {
    data: { title, description, ...(assignee ? { assignee } : {}) },
    headers: authHeader(user),
  });
  expect(resp.status(), await resp.text()).toBe(201);
  return resp.json();
}

/** A title no other test uses, so tests do not see each other's tasks. */
export function unique(prefix: string): string {
  return `${prefix} ${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
