import { expect, test } from "@playwright/test";
import { authHeader, BoardPage, createViaApi, registerUser, unique } from "./board-page";

test("changes made in either of two pages appear in the other within 2 s, with a toast", async ({
  browser,
  request,
}) => {
  const alice = new BoardPage(await (await browser.newContext()).newPage());
  const bob = new BoardPage(await (await browser.newContext()).newPage());
  for (const [board, name] of [
    [alice, "alice"],
    [bob, "bob"],
  ] as const) {
    const user = await registerUser(request, name);
    await board.gotoSignedIn(user);
    // The socket reopened for the signed-in user is up and subscribed.
    await expect(board.page.getByTestId("connection")).toHaveAttribute("data-personal", `user:${user.username}`);
    await expect(board.page.getByTestId("connection")).toHaveAttribute("data-state", "live");
    // A marker that a reload would wipe out.
    await board.page.evaluate(() => ((window as any).__noReload = true));
  }

  // Each page writes in turn and the other sees it: A to B, then B to A.
  // Every 2 s limit starts once the writing click has been made.
  for (const [writer, watcher] of [
    [alice, bob],
    [bob, alice],
  ] as const) {
    const title = unique("Seen live");
    await writer.createTask(title, "from the other page");
    await expect(watcher.column("todo")).toContainText(title, { timeout: 2_000 });
    await expect(watcher.toasts.filter({ hasText: `New task: ${title}` })).toBeVisible({ timeout: 2_000 });

    await writer.card(title).getByTestId("move-forward").click();
    await expect(watcher.column("doing")).toContainText(title, { timeout: 2_000 });
    await expect(watcher.column("todo")).not.toContainText(title);
    await expect(watcher.toasts.filter({ hasText: `Updated: ${title} (Doing)` })).toBeVisible({ timeout: 2_000 });
  }
  for (const board of [alice, bob]) {
    expect(await board.page.evaluate(() => (window as any).__noReload)).toBe(true);
  }
});

test("a task created through REST appears without a reload", async ({ page, request }) => {
  const user = await registerUser(request, "script");
  const board = new BoardPage(page);
  await board.goto();
  await board.waitForHydration();
  await expect(page.getByTestId("connection")).toHaveAttribute("data-state", "live");
  const title = unique("Posted by a script");
  await createViaApi(request, user, title);
  await expect(board.column("todo")).toContainText(title, { timeout: 2_000 });
  await expect(board.toasts.filter({ hasText: title })).toBeVisible({ timeout: 2_000 });
  // Deleting it elsewhere removes the card.
  const list = await (await request.get("/tasks")).json();
  const task = list.find((t: { title: string }) => t.title === title);
  expect((await request.delete(`/tasks/${task.id}`, { headers: authHeader(user) })).status()).toBe(204);
  await expect(board.card(title)).toHaveCount(0, { timeout: 2_000 });
});

test("changes made between rendering and connecting are not lost", async ({ page, request }) => {
  const user = await registerUser(request, "early");
  // Hold the WASM back so the page is rendered but not yet live.
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const heldUrls: string[] = [];
  await page.route("**/pkg/*.wasm", async (route) => {
    heldUrls.push(new URL(route.request().url()).pathname);
    await held;
    await route.continue();
  });
  const sockets: string[] = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  const board = new BoardPage(page);
  await board.goto();
  // The page has asked for its WASM, and that request is being held.
  await expect.poll(() => heldUrls, { timeout: 10_000 }).toEqual(["/pkg/pulseboard.wasm"]);
  const title = unique("Made while loading");
  await createViaApi(request, user, title);
  // At this point the task exists and the page is still only the server's
  // markup: not hydrated, no socket open, the new card not on it.
  expect(heldUrls).toHaveLength(1);
  expect(await board.app.getAttribute("data-hydrated")).toBe("false");
  expect(await page.getByTestId("connection").getAttribute("data-state")).toBe("connecting");
  expect(sockets).toEqual([]);
  expect(await board.card(title).count()).toBe(0);

  release();
  await board.waitForHydration();
  await expect(board.column("todo")).toContainText(title, { timeout: 3_000 });
  // Hydrated from the held WASM, fetched once, and live from here on.
  expect(heldUrls).toHaveLength(1);
  await expect(page.getByTestId("connection")).toHaveAttribute("data-state", "live");
});
