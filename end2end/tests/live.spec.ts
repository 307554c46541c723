import { expect, test } from "@playwright/test";
import { authHeader, BoardPage, createViaApi, registerUser, unique } from "./board-page";

test("a task created in one page appears in another within 2 s, with a toast", async ({ browser, request }) => {
  const alice = new BoardPage(await (await browser.newContext()).newPage());
  const bob = new BoardPage(await (await browser.newContext()).newPage());
  for (const board of [alice, bob]) {
    await board.goto();
    await board.waitForHydration();
    await expect(board.page.getByTestId("connection")).toHaveAttribute("data-state", "live");
  }
  // Only Alice writes; Bob watches signed out.
  await alice.signIn(await registerUser(request, "alice"));
  await expect(alice.page.getByTestId("connection")).toHaveAttribute("data-state", "live");

  const title = unique("Seen live");
  await alice.createTask(title, "from Alice");
  await expect(bob.column("todo")).toContainText(title, { timeout: 2_000 });
  await expect(bob.toasts.filter({ hasText: `New task: ${title}` })).toBeVisible({ timeout: 2_000 });

  // A change made elsewhere moves the card on both pages.
  await alice.card(title).getByTestId("move-forward").click();
  await expect(bob.column("doing")).toContainText(title, { timeout: 2_000 });
  await expect(bob.column("todo")).not.toContainText(title);
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
  await page.route("**/pkg/*.wasm", async (route) => {
    await held;
    await route.continue();
  });
  const board = new BoardPage(page);
  await board.goto();
  const title = unique("Made while loading");
  await createViaApi(request, user, title);
  release();
  await board.waitForHydration();
  await expect(board.column("todo")).toContainText(title, { timeout: 3_000 });
});
