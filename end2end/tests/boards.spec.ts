import { expect, test, type Page } from "@playwright/test";
import { authHeader, BoardPage, registerUser, unique } from "./board-page";

/** What `/ws/v1` answers `token`'s subscription to `topic`: "subscribed" or the error code. */
async function subscribeFromPage(page: Page, token: string, topic: string): Promise<string> {
  return page.evaluate(
    ([token, topic]) =>
      new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(`${location.origin.replace(/^http/, "ws")}/ws/v1`);
        ws.onopen = () => {
          ws.send(JSON.stringify({ type: "auth", id: 1, token }));
          ws.send(JSON.stringify({ type: "subscribe", id: 2, topic }));
        };
        ws.onmessage = (m) => {
          const msg = JSON.parse(m.data);
          if (msg.id !== 2) return;
          ws.close();
          resolve(msg.type === "subscribed" ? "subscribed" : msg.code);
        };
        ws.onerror = () => reject(new Error("socket failed"));
      }),
    [token, topic],
  );
}

test("a private board: the owner shares it, a viewer reads it live without controls, an outsider cannot open it", async ({
  browser,
  request,
}) => {
  const [owner, viewer, outsider] = await Promise.all([
    registerUser(request, "owner"),
    registerUser(request, "viewer"),
    registerUser(request, "outsider"),
  ]);
  const a = new BoardPage(await (await browser.newContext()).newPage());
  await a.gotoSignedIn(owner);

  // The owner starts a board from the list of boards.
  await a.page.getByTestId("nav-boards").click();
  await expect(a.page.getByTestId("board-list")).toHaveAttribute("data-loaded", "true");
  await a.waitForHydration();
  const name = unique("Launch");
  await a.page.getByTestId("board-name").fill(name);
  await a.page.getByTestId("create-board").click();
  await expect(a.page).toHaveURL(/\/b\/\d+$/);
  const id = Number(new URL(a.page.url()).pathname.split("/").pop());
  await a.waitForHydration();
  await expect(a.page.getByTestId("page-title")).toHaveText(name);
  await expect(a.page.getByTestId("visibility")).toContainText("Private");

  // ... and invites the viewer.
  await a.page.getByTestId("invite-name").fill(viewer.username);
  await a.page.getByTestId("invite-role").selectOption("viewer");
  await a.page.getByTestId("invite").click();
  const row = a.page.getByTestId("member").filter({ hasText: viewer.username });
  await expect(row.getByTestId("member-role-select")).toHaveValue("viewer");

  // The viewer opens the board: the tasks, no composer, no card buttons.
  const b = new BoardPage(await (await browser.newContext()).newPage());
  await b.gotoSignedIn(viewer);
  await b.page.goto(`/b/${id}`);
  await b.waitForHydration();
  await expect(b.page.getByTestId("page-title")).toHaveText(name);
  await expect(b.page.getByTestId("reader-note")).toBeVisible();
  await expect(b.page.getByTestId("new-task-form")).toHaveCount(0);
  await expect(b.page.getByTestId("connection")).toHaveAttribute("data-state", "live");

  // The owner adds a task; the viewer sees it within 2 s, without buttons.
  const title = unique("Write the plan");
  await a.createTask(title, "for the launch");
  await expect(b.column("todo")).toContainText(title, { timeout: 2_000 });
  await expect(b.card(title).getByTestId("delete-task")).toHaveCount(0);
  await expect(b.card(title).getByTestId("move-forward")).toHaveCount(0);

  // The API refuses the viewer's write as the page's absent controls do.
  const refused = await request.post(`/boards/${id}/tasks`, {
    data: { title: "sneaky" },
    headers: authHeader(viewer),
  });
  expect(refused.status()).toBe(403);
  expect((await refused.json()).error).toBe("forbidden");

  // Made a member, the viewer gets the composer without reloading.
  await row.getByTestId("member-role-select").selectOption("member");
  await expect(b.page.getByTestId("new-task-form")).toBeVisible({ timeout: 2_000 });
  await expect(b.card(title).getByTestId("move-forward")).toBeVisible();

  // An outsider can neither open the board nor follow its topic.
  const c = new BoardPage(await (await browser.newContext()).newPage());
  await c.gotoSignedIn(outsider);
  await c.page.goto(`/b/${id}`);
  await c.waitForHydration();
  await expect(c.page.getByTestId("load-error")).toHaveAttribute("data-status", "403");
  await expect(c.page.getByTestId("load-error")).toContainText("not shared with you");
  await expect(c.page.getByText(title)).toHaveCount(0);
  expect(await subscribeFromPage(c.page, outsider.token!, `board:${id}`)).toBe("forbidden");
  expect(await subscribeFromPage(b.page, viewer.token!, `board:${id}`)).toBe("subscribed");

  // Without an account the server answers 401 and shows why.
  const anonymous = await (await browser.newContext()).newPage();
  const resp = await anonymous.goto(`/b/${id}`);
  expect(resp?.status()).toBe(401);
  await expect(anonymous.getByTestId("load-error")).toContainText("This board is private");

  // Removed, the member's open page says so at once.
  b.page.on("dialog", (d) => d.accept());
  a.page.on("dialog", (d) => d.accept());
  await a.page
    .getByTestId("member")
    .filter({ hasText: viewer.username })
    .getByTestId("remove-member")
    .click();
  await expect(b.page.getByTestId("load-error")).toHaveAttribute("data-status", "403", { timeout: 2_000 });
  await expect(b.page.getByText(title)).toHaveCount(0);
});

test("a public board reads without an account and without JavaScript", async ({ browser, request }) => {
  const owner = await registerUser(request, "publisher");
  const created = await request.post("/boards", {
    data: { name: unique("Roadmap"), visibility: "public" },
    headers: authHeader(owner),
  });
  expect(created.status()).toBe(201);
  const board = await created.json();
  const title = unique("Public plan");
  expect(
    (
      await request.post(`/boards/${board.id}/tasks`, {
        data: { title },
        headers: authHeader(owner),
      })
    ).status(),
  ).toBe(201);
  const page = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  const resp = await page.goto(`/b/${board.id}`);
  expect(resp?.status()).toBe(200);
  await expect(page.getByTestId("page-title")).toHaveText(board.name);
  await expect(page.getByTestId("column-todo")).toContainText(title);
  await expect(page.getByTestId("reader-note")).toBeVisible();
  await expect(page.getByTestId("member").filter({ hasText: owner.username })).toBeVisible();
});
