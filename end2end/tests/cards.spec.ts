import { expect, test, type APIRequestContext, type Locator } from "@playwright/test";
import { authHeader, BoardPage, registerUser, unique, type User } from "./board-page";

/** A private board of `owner` with `member` invited to write, and its cards made through the API. */
async function sharedBoard(request: APIRequestContext, owner: User, member: User) {
  const resp = await request.post("/boards", { data: { name: unique("Cards") }, headers: authHeader(owner) });
  expect(resp.status(), await resp.text()).toBe(201);
  const board = await resp.json();
  const invite = await request.put(`/boards/${board.id}/members/${member.username}`, {
    data: { role: "member" },
    headers: authHeader(owner),
  });
  expect(invite.status(), await invite.text()).toBe(201);
  return board.id as number;
}

async function card(request: APIRequestContext, user: User, board: number, data: Record<string, unknown>) {
  const resp = await request.post(`/boards/${board}/tasks`, { data, headers: authHeader(user) });
  expect(resp.status(), await resp.text()).toBe(201);
  return resp.json();
}

async function open(page: BoardPage, board: number, user: User) {
  await page.page.goto(`/b/${board}`);
  await page.waitForHydration();
  await page.signIn(user);
  await expect(page.page.getByTestId("connection")).toHaveAttribute("data-state", "live");
}

/** The titles of a column's cards, top to bottom. */
function titles(column: Locator) {
  return column.getByTestId("task-title");
}

test("cards: Markdown shown safely, edited in place, reordered by keyboard and by dragging, deleted with undo; the other member sees each change within 2 s", async ({
  browser,
  request,
}) => {
  const [ann, bob] = await Promise.all([registerUser(request, "ann"), registerUser(request, "bob")]);
  const board = await sharedBoard(request, ann, bob);
  const first = await card(request, ann, board, {
    title: "First",
    description: "**bold** and [a link](https://example.org) <script>window.__owned = true</script> [bad](javascript:window.__owned=true)",
    due: "2030-01-15",
  });
  await card(request, ann, board, { title: "Second" });
  await card(request, ann, board, { title: "Third" });

  const a = new BoardPage(await (await browser.newContext()).newPage());
  const b = new BoardPage(await (await browser.newContext()).newPage());
  const dialogs: string[] = [];
  for (const p of [a, b]) p.page.on("dialog", (d) => (dialogs.push(d.message()), d.dismiss()));
  await open(a, board, ann);
  await open(b, board, bob);

  // Markdown: elements for Markdown, text for HTML, no link for javascript:.
  const description = b.card("First").getByTestId("task-description");
  await expect(description.locator("strong")).toHaveText("bold");
  await expect(description.locator("a")).toHaveCount(1);
  await expect(description.locator("a")).toHaveAttribute("href", "https://example.org");
  await expect(description).toContainText("<script>window.__owned = true</script>");
  await expect(description.locator("script")).toHaveCount(0);
  expect(await b.page.evaluate(() => (window as any).__owned)).toBeUndefined();
  await expect(b.card("First").locator(".due")).toHaveText("Due Jan 15, 2030");

  // Edit in place: A changes the title and the due date; B sees both.
  await a.card("First").getByTestId("edit-task").click();
  const form = a.page.getByTestId("edit-form");
  await form.getByTestId("edit-title").fill("First, edited");
  await form.getByTestId("edit-due").fill("2030-02-01");
  await form.getByTestId("save-edit").click();
  await expect(form).toHaveCount(0);
  await expect(b.card("First, edited")).toBeVisible({ timeout: 2_000 });
  await expect(b.card("First, edited").locator(".due")).toHaveText("Due Feb 1, 2030");

  // Labels: A makes one in the labels panel and puts it on the card.
  await a.page.getByTestId("label-name").fill("urgent");
  await a.page.getByTestId("label-color").selectOption("red");
  await a.page.getByTestId("add-label").click();
  await expect(a.page.getByTestId("labels-panel").getByTestId("label")).toHaveText(["urgent"]);
  await a.card("First, edited").getByTestId("edit-task").click();
  await a.page.getByTestId("edit-form").getByLabel("urgent").check();
  await a.page.getByTestId("edit-form").getByTestId("save-edit").click();
  await expect(a.page.getByTestId("edit-form")).toHaveCount(0);
  await expect(b.card("First, edited").getByTestId("label")).toHaveText("urgent", { timeout: 2_000 });
  await expect(b.card("First, edited").locator(".label-red")).toHaveCount(1);

  // Keyboard only: focus "move down" on the first card and press Enter
  // twice; the focus stays on the card as it moves.
  const todoA = a.column("todo");
  await expect(titles(todoA)).toHaveText(["First, edited", "Second", "Third"]);
  await a.card("First, edited").getByTestId("move-down").focus();
  await a.page.keyboard.press("Enter");
  await expect(titles(todoA)).toHaveText(["Second", "First, edited", "Third"]);
  await expect(a.card("First, edited").getByTestId("move-down")).toBeFocused();
  await a.page.keyboard.press("Enter");
  await expect(titles(todoA)).toHaveText(["Second", "Third", "First, edited"]);
  await expect(titles(b.column("todo"))).toHaveText(["Second", "Third", "First, edited"], { timeout: 2_000 });
  // At the bottom "move down" is disabled and the focus went to "move up".
  await expect(a.card("First, edited").getByTestId("move-down")).toBeDisabled();
  await expect(a.card("First, edited").getByTestId("move-up")).toBeFocused();
  await a.page.keyboard.press("Enter");
  await expect(titles(todoA)).toHaveText(["Second", "First, edited", "Third"]);
  // The focus follows the card (which may scroll the page): settled
  // before the mouse takes over.
  await expect(a.card("First, edited").getByTestId("move-up")).toBeFocused();
  // The focus follows the card (which may scroll the page): settled
  // before the mouse takes over.
  await expect(a.card("First, edited").getByTestId("move-up")).toBeFocused();

  // Drag and drop with the mouse: Third onto the top half of Second.
  // A moved card replays its arrival animation; the mouse starts once
  // the cards are still.
  await a.page.evaluate(() => Promise.all(document.getAnimations().map((x) => x.finished)));
  await a.card("Third").dragTo(a.card("Second"), { targetPosition: { x: 20, y: 5 } });
  await expect(titles(todoA)).toHaveText(["Third", "Second", "First, edited"]);
  await expect(titles(b.column("todo"))).toHaveText(["Third", "Second", "First, edited"], { timeout: 2_000 });
  // ... and Second into the Doing column, once the cards are still again.
  await a.page.evaluate(() => Promise.all(document.getAnimations().map((x) => x.finished)));
  await a.card("Second").dragTo(a.column("doing"));
  await expect(titles(a.column("doing"))).toHaveText(["Second"]);
  await expect(titles(b.column("doing"))).toHaveText(["Second"], { timeout: 2_000 });

  // Delete asks first, then can be undone for a few seconds.
  await a.card("Third").getByTestId("delete-task").click();
  await a.card("Third").getByTestId("cancel-delete").click();
  await a.card("Third").getByTestId("delete-task").click();
  await a.card("Third").getByTestId("confirm-delete").click();
  await expect(a.card("Third")).toHaveCount(0);
  await a.page.getByTestId("undo-delete").getByTestId("undo").click();
  await expect(a.card("Third")).toBeVisible();
  await a.page.waitForTimeout(5_500);
  const kept = await request.get(`/tasks/${first.id + 2}`, { headers: authHeader(ann) });
  expect(kept.status()).toBe(200);
  // A deletes it, but B changes it before the undo window is over: the
  // deletion is refused (it names the version A saw) and the card stays.
  await a.card("Third").getByTestId("delete-task").click();
  await a.card("Third").getByTestId("confirm-delete").click();
  await expect(a.card("Third")).toHaveCount(0);
  const renamed = await request.patch(`/tasks/${first.id + 2}`, {
    data: { title: "Third, kept" },
    headers: authHeader(bob),
  });
  expect(renamed.status()).toBe(200);
  await expect(a.card("Third, kept")).toBeVisible({ timeout: 5_000 + 2_000 });
  await expect(a.toasts.filter({ hasText: "“Third” was changed by someone else meanwhile, so it was kept" })).toBeVisible();
  // Deleted for good once the undo window is over: B sees it go.
  await a.card("Third, kept").getByTestId("delete-task").click();
  await a.card("Third, kept").getByTestId("confirm-delete").click();
  await expect(b.card("Third, kept")).toHaveCount(0, { timeout: 5_000 + 2_000 });
  const gone = await request.get(`/tasks/${first.id + 2}`, { headers: authHeader(ann) });
  expect(gone.status()).toBe(404);
  expect(dialogs).toEqual([]);
});
