"use strict";

module.exports = {
  async up(queryInterface) {
    await queryInterface.sequelize.query(
      "CREATE TABLE blog (id int PRIMARY KEY, title text NOT NULL, content text)"
    );
  },
  async down(queryInterface) {
    await queryInterface.sequelize.query("DROP TABLE blog");
  },
};
