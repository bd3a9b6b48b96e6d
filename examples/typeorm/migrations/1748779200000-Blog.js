module.exports = class Blog1748779200000 {
  name = "Blog1748779200000";

  async up(queryRunner) {
    await queryRunner.query(`CREATE TABLE "blog" ("id" integer NOT NULL, "title" text, "content" text, CONSTRAINT "PK_blog" PRIMARY KEY ("id"))`);
  }

  async down(queryRunner) {
    await queryRunner.query(`DROP TABLE "blog"`);
  }
};
