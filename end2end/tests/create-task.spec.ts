import { expect, test } from "@playwright/test";
import { BoardPage, unique } from "./board-page";

test("the form creates a task that appears without a reload", async ({ page }, testInfo) => {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });

  const board = new BoardPage(page);
  await board.goto();
  await board.waitForHydration();
  // A marker that a reload would wipe out.
  await page.evaluate(() => ((window as any).__noReload = true));

  const title = unique("Plan the launch");
  await board.createTask(title, "Write the announcement\nand the changelog", "doing");

  await expect(board.column("doing")).toContainText(title);
  await expect(board.card(title)).toContainText("and the changelog");
  await expect(board.title).toHaveValue("");
  await expect(board.toasts.filter({ hasText: title })).toBeVisible();
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);

  const shot = await page.screenshot({ fullPage: true, path: testInfo.outputPath("board.png") });
  await testInfo.attach("board", { body: shot, contentType: "image/png" });
  expect(errors).toEqual([]);
});

test("an invalid title is explained, not sent", async ({ page }) => {
  const board = new BoardPage(page);
  await board.goto();
  await board.waitForHydration();
  await board.title.fill("   ");
  await board.submit.click();
  await expect(board.formError).toHaveText("title must not be empty");
});
