import { expect, test } from "@playwright/test";
import { BoardPage, registerUser, storedTasks, taskWrites, unique } from "./board-page";

test("the form creates a task that appears without a reload", async ({ page, request }, testInfo) => {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });

  const user = await registerUser(request, "maker");
  const board = new BoardPage(page);
  await board.gotoSignedIn(user);
  // A marker that a reload would wipe out.
  await page.evaluate(() => ((window as any).__noReload = true));

  const title = unique("Plan the launch");
  await board.createTask(title, "Write the announcement\nand the changelog", "doing");

  await expect(board.column("doing")).toContainText(title);
  await expect(board.card(title)).toContainText("and the changelog");
  await expect(board.card(title).getByTestId("task-created-by")).toHaveText(`by ${user.username}`);
  await expect(board.title).toHaveValue("");
  await expect(board.toasts.filter({ hasText: title })).toBeVisible();
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);

  const shot = await page.screenshot({ fullPage: true, path: testInfo.outputPath("board.png") });
  await testInfo.attach("board", { body: shot, contentType: "image/png" });
  expect(errors).toEqual([]);
});

test("an invalid title is explained, not sent", async ({ page, request }) => {
  const board = new BoardPage(page);
  await board.gotoSignedIn(await registerUser(request));
  const writes = taskWrites(page);
  await board.title.fill("   ");
  await board.submit.click();
  await expect(board.formError).toHaveText("title must not be empty");
  // The server would say the same: only the absence of a request shows
  // that the page, not the server, refused it.
  await writes.settle();
  expect(writes.sent()).toEqual([]);

  // The same form with a valid title is sent, once: the log sees this
  // form's writes, so the empty log above means nothing was sent.
  const title = unique("Valid after all");
  await board.title.fill(title);
  await board.submit.click();
  await expect(board.card(title)).toBeVisible();
  await expect(board.formError).toHaveCount(0);
  expect(writes.targets()).toEqual(["POST /tasks"]);
  expect(writes.requests[0].postDataJSON().title).toBe(title);
});

test("a task can be assigned, and an unknown assignee is refused", async ({ page, request }) => {
  const owner = await registerUser(request, "owner");
  const helper = await registerUser(request, "helper");
  const board = new BoardPage(page);
  await board.gotoSignedIn(owner);

  const title = unique("Hand it over");
  await board.createTask(title, "", "todo", helper.username);
  await expect(board.card(title).getByTestId("task-assignee")).toHaveText(`→ ${helper.username}`);
  await expect(board.assignee).toHaveValue("");

  // A well-formed name that has no account: only the server knows, so the
  // request is sent and refused, and nothing is stored.
  const nobody = unique("Nobody takes it");
  const refused = page.waitForResponse(
    (r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/tasks",
    { timeout: 5_000 },
  );
  await board.createTask(nobody, "", "todo", "no-such-user");
  expect((await refused).status()).toBe(422);
  await expect(board.formError).toContainText("no-such-user");
  await expect(board.card(nobody)).toHaveCount(0);
  expect((await storedTasks(request)).map((t) => t.title)).not.toContain(nobody);
});
