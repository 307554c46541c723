import { expect, type APIRequestContext, type Locator, type Page } from "@playwright/test";

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

  constructor(readonly page: Page) {
    this.app = page.getByTestId("app");
    this.title = page.getByTestId("new-title");
    this.description = page.getByTestId("new-description");
    this.status = page.getByTestId("new-status");
    this.submit = page.getByTestId("create-task");
    this.formError = page.getByTestId("form-error");
    this.toasts = page.getByTestId("toast");
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

  async createTask(title: string, description = "", status: Status = "todo") {
    await this.title.fill(title);
    await this.description.fill(description);
    await this.status.selectOption(status);
    await this.submit.click();
  }
}

/** Creates a task through the REST API, as another client would. */
export async function createViaApi(request: APIRequestContext, title: string, description = "") {
  const resp = await request.post("/tasks", { data: { title, description } });
  expect(resp.status()).toBe(201);
  return resp.json();
}

/** A title no other test uses, so tests do not see each other's tasks. */
export function unique(prefix: string): string {
  return `${prefix} ${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
