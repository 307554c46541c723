import { expect, test } from "@playwright/test";
import {
  authHeader,
  BoardPage,
  createViaApi,
  registerUser,
  RequestLog,
  storedTasks,
  unique,
  uniqueUsername,
} from "./board-page";

const STORAGE_KEY = "pulseboard.session";

test("sign up, write, stay signed in across a reload, sign out", async ({ page }) => {
  const board = new BoardPage(page);
  await board.goto();
  await board.waitForHydration();
  // Signed out: the board is there, writing is not.
  await expect(board.submit).toBeDisabled();
  await expect(page.getByTestId("signin-hint")).toHaveText("Sign in to add or change tasks");

  const username = uniqueUsername("new");
  await board.username.fill(username);
  await board.password.fill("a long enough password");
  await board.signUpButton.click();
  await expect(board.signedInAs).toHaveText(`Signed in as ${username}`);
  await expect(page.getByTestId("signin-hint")).toHaveCount(0);

  const title = unique("My first task");
  await board.createTask(title);
  await expect(board.card(title).getByTestId("task-created-by")).toHaveText(`by ${username}`);

  await page.reload();
  await board.waitForHydration();
  await expect(board.signedInAs).toHaveText(`Signed in as ${username}`);
  await expect(board.submit).toBeEnabled();
  await expect(board.card(title).getByTestId("move-forward")).toBeEnabled();

  // The token the page held, to check that signing out ends it on the server.
  const stored = await page.evaluate((key) => localStorage.getItem(key), STORAGE_KEY);
  const token = JSON.parse(stored ?? "{}").token as string;
  expect((await page.request.get("/users/me", { headers: { Authorization: `Bearer ${token}` } })).status()).toBe(200);

  await board.signOutButton.click();
  await expect(board.username).toBeVisible();
  await expect(board.signedInAs).toHaveCount(0);
  await expect(board.submit).toBeDisabled();
  await expect(board.card(title).getByTestId("move-forward")).toBeDisabled();
  expect(await page.evaluate((key) => localStorage.getItem(key), STORAGE_KEY)).toBeNull();
  // The session ended on the server too: the old token no longer works.
  await expect
    .poll(async () =>
      (await page.request.get("/users/me", { headers: { Authorization: `Bearer ${token}` } })).status(),
    )
    .toBe(401);
  // Still signed out after a reload.
  await page.reload();
  await board.waitForHydration();
  await expect(board.username).toBeEnabled();
  await expect(board.signedInAs).toHaveCount(0);
});

test("a wrong password shows the server's message", async ({ page, request }) => {
  const user = await registerUser(request, "forgetful");
  const board = new BoardPage(page);
  await board.goto();
  await board.waitForHydration();
  await board.username.fill(user.username);
  await board.password.fill("not the password");
  const answer = page.waitForResponse(
    (r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/token",
    { timeout: 5_000 },
  );
  await board.signInButton.click();
  // The password went to the server, which refused it; the page shows the
  // server's own words.
  const resp = await answer;
  expect(resp.status()).toBe(401);
  const { message } = await resp.json();
  expect(message).toBe("incorrect username or password");
  await expect(board.signInError).toHaveText(message);
  await expect(board.signedInAs).toHaveCount(0);
});

test("the account rules are explained before anything is sent", async ({ page, request }) => {
  const taken = await registerUser(request, "taken");
  const board = new BoardPage(page);
  await board.goto();
  await board.waitForHydration();
  const sent = new RequestLog(page, ["POST"], /^\/(auth\/register|token)$/);
  await board.username.fill(uniqueUsername("short"));
  await board.password.fill("1234567");
  await board.signUpButton.click();
  await expect(board.signInError).toHaveText("password must be at least 8 characters");
  await board.username.fill("Not Valid");
  await board.password.fill("long enough now");
  await board.signUpButton.click();
  await expect(board.signInError).toContainText("username may contain only lowercase letters");
  // Neither the account nor a sign-in was asked for.
  await sent.settle();
  expect(sent.sent()).toEqual([]);

  // A name that is taken is the server's to say: this one is sent (so the
  // log does see this form's requests), refused, and no sign-in follows.
  await board.username.fill(taken.username);
  const answer = page.waitForResponse(
    (r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/auth/register",
    { timeout: 5_000 },
  );
  await board.signUpButton.click();
  expect((await answer).status()).toBe(409);
  await expect(board.signInError).toHaveText("that username is taken");
  await sent.settle();
  expect(sent.targets()).toEqual(["POST /auth/register"]);
  expect(sent.requests[0].postDataJSON().username).toBe(taken.username);
});

test("an expired stored session is discarded on load", async ({ page, request }) => {
  const user = await registerUser(request, "stale");
  await page.goto("/");
  await page.evaluate(
    ([key, session]) => localStorage.setItem(key, JSON.stringify(session)),
    [
      STORAGE_KEY,
      { username: user.username, token: user.token, issued_at_ms: 0, expires_at_ms: Date.now() - 1000 },
    ] as const,
  );
  const board = new BoardPage(page);
  await page.reload();
  await board.waitForHydration();
  await expect(board.username).toBeEnabled();
  await expect(board.signedInAs).toHaveCount(0);
  expect(await page.evaluate((key) => localStorage.getItem(key), STORAGE_KEY)).toBeNull();
});

test("the token is refreshed before it expires and stored", async ({ page, request }) => {
  const user = await registerUser(request, "fresh");
  const board = new BoardPage(page);
  await board.gotoSignedIn(user);
  // Pretend the stored token is five hours into a six-hour life, past the
  // point where a refresh is due: the page refreshes it once restored.
  const backdated = await page.evaluate((key) => {
    const s = JSON.parse(localStorage.getItem(key)!);
    s.issued_at_ms = s.expires_at_ms - 6 * 3600_000;
    localStorage.setItem(key, JSON.stringify(s));
    return s.issued_at_ms as number;
  }, STORAGE_KEY);
  await page.reload();
  await board.waitForHydration();
  await expect(board.signedInAs).toContainText(user.username);
  await expect
    .poll(async () =>
      page.evaluate((key) => JSON.parse(localStorage.getItem(key) ?? "{}").issued_at_ms ?? 0, STORAGE_KEY),
    )
    .toBeGreaterThan(backdated + 3600_000);
  // The fresh token works for writes.
  const title = unique("Written with a refreshed token");
  await board.createTask(title);
  await expect(board.card(title)).toBeVisible();
  await expect(board.signedInAs).toContainText(user.username);
});

test("a write refused with 401 signs out and asks to sign in again", async ({ page, request }) => {
  const user = await registerUser(request, "revoked");
  const board = new BoardPage(page);
  await board.gotoSignedIn(user);
  // The server stops accepting this token (as after a secret rotation)
  // while the page still holds it.
  let refused = 0;
  await page.route("**/tasks", async (route) => {
    if (route.request().method() !== "POST") return route.continue();
    refused += 1;
    await route.fulfill({
      status: 401,
      contentType: "application/json",
      body: JSON.stringify({ error: "unauthorized", message: "the token is invalid" }),
    });
  });
  const title = unique("Never stored");
  await board.createTask(title);
  await expect(board.toasts.filter({ hasText: "please sign in again" })).toBeVisible();
  await expect(board.signedInAs).toHaveCount(0);
  await expect(board.submit).toBeDisabled();
  await expect(board.card(title)).toHaveCount(0);
  // The write was made once and answered by the stand-in above, so the
  // server never saw it: the 401 is the only thing the page reacted to.
  expect(refused).toBe(1);
  expect((await storedTasks(request)).map((t) => t.title)).not.toContain(title);
});

test("deleting the account elsewhere signs the page out", async ({ page, request }) => {
  const user = await registerUser(request, "leaving");
  const board = new BoardPage(page);
  await board.gotoSignedIn(user);
  await expect(page.getByTestId("connection")).toHaveAttribute("data-personal", `user:${user.username}`);
  expect((await request.delete("/users/me", { headers: authHeader(user), data: { password: user.password } })).status()).toBe(204);
  await expect(board.toasts.filter({ hasText: "account was deleted" })).toBeVisible();
  await expect(board.signedInAs).toHaveCount(0);
  await expect(board.submit).toBeDisabled();
  await expect(page.getByTestId("connection")).toHaveAttribute("data-state", "live");
});

test("changing the password elsewhere signs the page out", async ({ page, request }) => {
  const user = await registerUser(request, "moving");
  const board = new BoardPage(page);
  await board.gotoSignedIn(user);
  await expect(page.getByTestId("connection")).toHaveAttribute("data-personal", `user:${user.username}`);
  const changed = await request.post("/auth/password", {
    headers: authHeader(user),
    data: { current_password: user.password, new_password: "another good passphrase" },
  });
  expect(changed.status()).toBe(200);
  await expect(board.toasts.filter({ hasText: "You were signed out" })).toBeVisible();
  await expect(board.signedInAs).toHaveCount(0);
  await expect(page.getByTestId("connection")).toHaveAttribute("data-state", "live");
});

test("a task assigned by someone else notifies the assignee live", async ({ browser, request }) => {
  const bob = await registerUser(request, "bob");
  const ann = await registerUser(request, "ann");
  const page = await (await browser.newContext()).newPage();
  const board = new BoardPage(page);
  await board.gotoSignedIn(bob);
  // Subscribed to bob's personal topic on the (re)connected socket.
  await expect(page.getByTestId("connection")).toHaveAttribute("data-personal", `user:${bob.username}`);

  const title = unique("Fix the flaky test");
  await createViaApi(request, ann, title, "", bob.username);
  await expect(
    board.toasts.filter({ hasText: `Task assigned to you: ${ann.username} assigned you “${title}”` }),
  ).toBeVisible({ timeout: 3_000 });
  await expect(board.card(title).getByTestId("task-assignee")).toHaveText(`→ ${bob.username}`);
});
