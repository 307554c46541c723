import { expect, test } from "@playwright/test";
import { BoardPage, registerUser } from "./board-page";

// Regenerates the README's pictures of a board, signed in as a member: at
// desktop width into BOARD_SCREENSHOT, at phone width into the same name
// with "-phone" before the extension, and at phone width in the dark theme
// with "-phone-dark". Skipped unless BOARD_SCREENSHOT names
// the file to write; run it alone on a fresh database, e.g.
// `BOARD_SCREENSHOT=../docs/board.png scripts/e2e.sh docs-screenshot`.
const target = process.env.BOARD_SCREENSHOT;

test("a picture of the signed-in board", async ({ page, request }) => {
  test.skip(!target, "set BOARD_SCREENSHOT to write the picture");
  const ann = await registerUser(request, "ann", true);
  const bob = await registerUser(request, "bob", true);
  const tasks: [string, string, string | undefined, "todo" | "doing" | "done", string?][] = [
    ["Write the release notes", "Summarise **every change** since 0.9 for the blog post.", bob.username, "todo", "2026-12-18"],
    ["Load-test fan-out", "- 10k subscribers\n- two instances\n- one Redis", undefined, "todo"],
    ["Review the Redis broker PR", "Check resubscribe after a connection drop (`resubscribe_all`).", ann.username, "doing", "2026-12-11"],
    ["Design the login page", "", bob.username, "doing"],
    ["Set up CI", "`make test` on every push, under 90 minutes.", undefined, "done"],
    ["Pick a colour palette", "", ann.username, "done"],
  ];
  const auth = { Authorization: `Bearer ${ann.token}` };
  const created = await request.post("/boards", { data: { name: "Launch 1.0" }, headers: auth });
  expect(created.status()).toBe(201);
  const boardId = (await created.json()).id;
  for (const [name, role] of [
    [bob.username, "member"],
    [(await registerUser(request, "cyd", true)).username, "viewer"],
  ]) {
    const resp = await request.put(`/boards/${boardId}/members/${name}`, { data: { role }, headers: auth });
    expect(resp.status()).toBe(201);
  }
  const label = async (name: string, color: string) => {
    const resp = await request.post(`/boards/${boardId}/labels`, { data: { name, color }, headers: auth });
    expect(resp.status(), await resp.text()).toBe(201);
    return (await resp.json()).id as number;
  };
  const labels: Record<string, number> = {
    "Write the release notes": await label("docs", "purple"),
    "Review the Redis broker PR": await label("backend", "blue"),
    "Design the login page": await label("design", "pink"),
  };
  const onBoard = async (title: string, description: string, assignee?: string, due?: string) => {
    const resp = await request.post(`/boards/${boardId}/tasks`, {
      data: {
        title,
        description,
        ...(assignee ? { assignee } : {}),
        ...(due ? { due } : {}),
        ...(labels[title] ? { labels: [labels[title]] } : {}),
      },
      headers: auth,
    });
    expect(resp.status(), await resp.text()).toBe(201);
    return resp.json();
  };
  for (const [title, description, assignee, status, due] of tasks) {
    const task = await onBoard(title, description, assignee, due);
    if (status !== "todo") {
      const resp = await request.patch(`/tasks/${task.id}`, {
        data: { status },
        headers: auth,
      });
      expect(resp.status()).toBe(200);
    }
  }
  const board = new BoardPage(page);
  await board.gotoSignedIn(bob);
  await page.goto(`/b/${boardId}`);
  await board.waitForHydration();
  await expect(page.getByTestId("connection")).toHaveAttribute("data-personal", `user:${bob.username}`);
  await expect(page.getByTestId("member")).toHaveCount(3);
  // Only the notification should be in the picture.
  while ((await board.toasts.count()) > 0) await board.toasts.first().getByRole("button").click();
  await onBoard("Announce on the forum", "", bob.username);
  await expect(board.toasts.filter({ hasText: "Task assigned to you" })).toBeVisible();
  // Let the arrival animations finish.
  await page.waitForTimeout(500);
  await page.screenshot({ path: target!, fullPage: false });
  while ((await board.toasts.count()) > 0) await board.toasts.first().getByRole("button").click();
  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: target!.replace(/(\.[a-z]+)$/, "-phone$1"), fullPage: false });
  // The dark theme follows the system setting.
  await page.emulateMedia({ colorScheme: "dark" });
  await page.waitForTimeout(300);
  await page.screenshot({ path: target!.replace(/(\.[a-z]+)$/, "-phone-dark$1"), fullPage: false });
});
